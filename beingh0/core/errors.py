"""The exception for a user's mistake.

A :class:`UserError` carries a message that says what went wrong *and what to do*, in one line. The
command line (``beingh0 ...``) prints it as ``beingh0: error: <message>`` and exits with status 2;
any other exception is a bug and keeps its traceback. Library callers catch it like the built-in
class it also derives from (format errors are ``ValueError``s, missing files ``FileNotFoundError``s).
"""
from __future__ import annotations

__all__ = ["UserError", "UserValueError", "UserFileError"]


class UserError(Exception):
    """A mistake in what the user passed: bad arguments, a malformed or missing file, a wrong unit."""


class UserValueError(UserError, ValueError):
    """A user's value or file content is wrong (also a ``ValueError``)."""


class UserFileError(UserError, FileNotFoundError):
    """A path the user gave does not exist or is not the kind of path expected (also a ``FileNotFoundError``)."""
