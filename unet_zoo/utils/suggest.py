"""Suggestions for a mistyped name ("did you mean ...?"), shared by every lookup that can fail on a name.

Standard library only: registry, recipes, Hub and `load_model` errors all build their hint here.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(name: str, known: Iterable[str], n: int = 3, cutoff: float = 0.5) -> list[str]:
    """Up to `n` names of `known` that look like `name` (closest first; `cutoff` in [0, 1], 1 = identical)."""
    return difflib.get_close_matches(name, list(known), n=n, cutoff=cutoff)


def did_you_mean(name: str, known: Iterable[str], n: int = 3, cutoff: float = 0.5) -> str:
    """The hint `` Did you mean 'a', 'b'?`` (with a leading space) for `name`, or "" when nothing looks like it."""
    close = close_matches(name, known, n, cutoff)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


__all__ = ["close_matches", "did_you_mean"]
