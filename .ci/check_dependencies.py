"""Check that every requirement in the dependency tree of an installed package is met (a scoped `pip check`).

    python3 .ci/check_dependencies.py "unet-zoo[test]"

Walks the requirements of the package and its extras, recursively (with the extras each requirement asks
for and its environment markers), and fails when one is missing or installed at a version outside its
specifier. `pip check` looks at the whole environment instead, so a machine that also holds unrelated tools
(e.g. an AWS client pinning an old python-dateutil) fails it although nothing a fresh install of this package
resolves is in conflict; such conflicts outside the tree are listed here for information only.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def dependency_problems(root: str) -> tuple[set[str], list[str]]:
    """(names of the distributions in the tree of `root`, e.g. "pkg[extra]", and the unmet requirements)."""
    start = Requirement(root)
    queue = [(canonicalize_name(start.name), frozenset(start.extras), root)]
    seen: set[tuple[str, frozenset[str]]] = set()
    tree: set[str] = set()
    problems: list[str] = []
    while queue:
        name, extras, wanted_by = queue.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{wanted_by} requires {name}, which is not installed")
            continue
        tree.add(name)
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in {"", *extras}):
                continue
            dep = canonicalize_name(req.name)
            try:
                version = metadata.version(dep)
            except metadata.PackageNotFoundError:
                problems.append(f"{dist.metadata['Name']} {dist.version} requires {req}, which is not installed")
                continue
            if req.specifier and not req.specifier.contains(version, prereleases=True):
                problems.append(f"{dist.metadata['Name']} {dist.version} requires {req}, but {dep} {version} is installed")
            queue.append((dep, frozenset(req.extras), f"{dist.metadata['Name']} {dist.version}"))
    return tree, problems


def main() -> int:
    root = sys.argv[1] if len(sys.argv) > 1 else "unet-zoo[test]"
    tree, problems = dependency_problems(root)
    print(f"{root}: {len(tree)} distributions in its dependency tree, {len(problems)} unmet requirements")
    for problem in problems:
        print(f"  {problem}")
    report = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True).stdout
    outside = [line for line in report.splitlines() if line.split(" ")[0] and canonicalize_name(line.split(" ")[0]) not in tree]
    if outside:
        print("conflicts among other packages on this machine (not in the tree, not checked):")
        for line in outside:
            if not line.startswith("No broken"):
                print(f"  {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
