"""The one exception type for mistakes a user can fix: a bad flag, file or config."""

from __future__ import annotations


class UserError(Exception):
    """Reported as a single `error: ...` line with exit code 2, never as a traceback."""

    exit_code = 2
