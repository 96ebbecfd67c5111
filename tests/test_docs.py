"""Every code block of README.md and docs/*.md runs as written (or, where marked parse-only, parses against the CLI).

The runner is tests/docs_blocks.py: each block runs on its own in a temporary folder that reads like the
repository root (``../shared`` is the checkout's), and bash blocks find this checkout's `unet-zoo`.
A block that names ``../shared/data/isbi2012`` is skipped when that folder is missing.
"""

from __future__ import annotations

import pytest

from tests import docs_blocks
from tests.docs_blocks import Block

ALL_BLOCKS = [block for page in docs_blocks.pages() for block in docs_blocks.blocks(page)]
RUNNABLE = [b for b in ALL_BLOCKS if b.language in docs_blocks.RUN_LANGUAGES and b.mode != "parse-only"]
PARSE_ONLY = [b for b in ALL_BLOCKS if b.mode == "parse-only"]


def _marks(block: Block) -> list[pytest.MarkDecorator]:
    slow = block.mode == "slow" or block.language != "python"
    return [pytest.mark.slow] if slow else []


def test_every_block_names_its_language():
    """Unlabelled fences cannot be told apart from code; output and pseudo-code are fenced as ```text."""
    bad = [f"{b.id} ```{b.language}" for b in ALL_BLOCKS if b.language not in docs_blocks.KNOWN_LANGUAGES]
    assert not bad, f"fence these blocks with a language (```text for output or pseudo-code): {bad}"


def test_markers_sit_on_runnable_blocks():
    """A docs-test marker belongs right above a python or shell block, and says why."""
    misplaced = [b.id for b in ALL_BLOCKS if b.mode != "run" and b.language not in docs_blocks.RUN_LANGUAGES]
    assert not misplaced
    assert all(b.reason.strip() for b in ALL_BLOCKS if b.mode != "run")


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id) for b in PARSE_ONLY])
def test_parse_only_block_parses(block: Block):
    assert docs_blocks.check_block(block) > 0, f"{block.id}: nothing in this parse-only block could be checked"


@pytest.fixture
def keep_registry():
    """Blocks may register models (docs/models.md); the registry is restored for the tests that follow."""
    from unet_zoo.models import registry

    models, pretrained = dict(registry._MODELS), dict(registry.PRETRAINED)
    yield
    registry._MODELS.clear()
    registry._MODELS.update(models)
    registry.PRETRAINED.clear()
    registry.PRETRAINED.update(pretrained)


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id, marks=_marks(b)) for b in RUNNABLE])
def test_block_runs(block: Block, tmp_path, keep_registry):
    if "../shared/data/isbi2012" in block.code and not (docs_blocks.SHARED / "data" / "isbi2012").is_dir():
        pytest.skip("the block reads ../shared/data/isbi2012, which is not on this machine")
    docs_blocks.run_block(block, docs_blocks.page_workdir(tmp_path), {})


def test_parse_only_catches_a_renamed_option():
    """The parse-only check fails for an option the CLI does not have, and for a wrong value type."""
    with pytest.raises(AssertionError, match="--no-such-option"):
        docs_blocks.check_command(["unet-zoo", "predict", "isbi-small", "x.tif", "--no-such-option"])
    with pytest.raises(AssertionError, match="tile"):
        docs_blocks.check_command(["unet-zoo", "predict", "isbi-small", "x.tif", "--tile", "big"])
    with pytest.raises(AssertionError, match="--force is deprecated"):
        docs_blocks.check_command(["unet-zoo", "export", "isbi-small", "--format", "onnx", "--out", "m.onnx", "--force"])
    with pytest.raises(AssertionError, match="no such script"):
        docs_blocks.check_command(["python3", "benchmarks/no_such_script.py"])
    with pytest.raises(AssertionError, match="no extra"):
        docs_blocks.check_command(["python3", "-m", "pip", "install", "-e", ".[no-such-extra]"])
    assert docs_blocks.check_command(["unet-zoo", "reproduce", "isbi", "--quick", "--data-dir", "d"]) == "unet-zoo"


def test_commands_split_a_shell_block():
    code = "A=1 unet-zoo list --json > out.txt 2>&1 && unet-zoo \\\n  info small   # a comment\nnohup x &\n"
    assert docs_blocks.commands(code) == [["unet-zoo", "list", "--json"], ["unet-zoo", "info", "small"], ["nohup", "x"]]


def test_parse_only_python_catches_a_renamed_function():
    assert docs_blocks.check_python("import unet_zoo\nm = unet_zoo.from_pretrained('x')\n") >= 2
    with pytest.raises(AssertionError, match="no_such_function"):
        docs_blocks.check_python("import unet_zoo\nunet_zoo.no_such_function()\n")
    with pytest.raises(AssertionError, match="no_such_name"):
        docs_blocks.check_python("from unet_zoo.experiments.isbi2012.data import no_such_name\n")


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id) for b in ALL_BLOCKS if b.language == "toml"])
def test_toml_block_parses(block: Block):
    """Recipe snippets are valid TOML (the recipe loader's parser)."""
    assert docs_blocks.tomllib.loads(block.code)
