"""User-facing errors.

An :class:`EmpoError` is a problem with the user's input (a file, a field, a flag) that the user can fix.
The CLI prints it as ONE line (``error: ...``) and exits with status 1, without a traceback. Messages name the
file, line or field, and say how to fix it.
"""

from __future__ import annotations


class EmpoError(Exception):
    """A problem the user can fix; printed as one line by the CLI (exit status 1)."""


class DataError(EmpoError):
    """Bad or missing input data (names the file and the line or field)."""


class RecipeError(EmpoError):
    """A recipe or override that does not validate (names the file and the field)."""
