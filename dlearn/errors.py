"""The one base class of user-input errors: the CLI prints their message alone, without a traceback.

Every error about a user's file, sample, config key or flag derives from :class:`InputError` and
names what is wrong in its message (the file, the annotation, the key and the value found).
"""

from __future__ import annotations


class InputError(ValueError):
    """A user's input (file, sample, option) is wrong; the message names it and what was found."""
