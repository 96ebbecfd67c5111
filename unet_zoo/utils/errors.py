"""The one exception class for bad input: a file, an option or a metadata value the user can fix.

Library code raises `InputError` (or a subclass: `CheckpointError`, `LabelledDataError`, `PixelSizeError`, ...)
with a message that names the file or value and says what to do; the command line turns every one of them
into a single red ``error:`` line and exit status 2, never a traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input (a file, an option, a metadata value): the message names it and says how to fix it."""


__all__ = ["InputError"]
