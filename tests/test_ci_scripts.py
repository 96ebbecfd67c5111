""".ci/readme_lines.sh: it runs the README's own first bash block, with no X server on its PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

SCRIPT = REPO_ROOT / ".ci" / "readme_lines.sh"


def _first_bash_block(readme: str) -> list[str]:
    lines = readme.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    return [line for line in lines if line.strip()]


@pytest.mark.skipif(shutil.which("bash") is None, reason="the CI scripts are bash scripts")
def test_readme_lines_are_the_readmes_first_bash_block_run_without_xvfb(tmp_path: Path):
    fake = tmp_path / "fake-bin"  # an Xvfb and an xvfb-run on PATH, as on a CI machine with apt's xvfb
    fake.mkdir()
    for name in ("Xvfb", "xvfb-run"):
        (fake / name).write_text("#!/bin/sh\nexit 0\n")
        (fake / name).chmod(0o755)
    path = os.pathsep.join([str(fake), "/usr/bin", "/bin"])
    env = {**os.environ, "PATH": path, "TMPDIR": str(tmp_path)}
    assert subprocess.run(["bash", "-c", "command -v Xvfb"], env=env, capture_output=True).returncode == 0
    done = subprocess.run(["bash", str(SCRIPT), "--print"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()
    expected = _first_bash_block((REPO_ROOT / "README.md").read_text())
    assert [line.removeprefix("line: ") for line in printed if line.startswith("line: ")] == expected
    assert printed[-1] == "no Xvfb on PATH"
    newcomer_path = next(line for line in printed if line.startswith("PATH="))
    assert "/venv/bin:" in newcomer_path and str(fake) not in newcomer_path
