"""Errors the user can fix, and how every console command reports them: one line, exit status 1, no traceback.

Our own user-error types derive from ``UserError``. The code also raises ``ValueError`` and
``FileNotFoundError`` for bad input, always with a message naming the file, the field and the fix, so the
console entries treat those the same way (``USER_ERRORS``). An ``OSError`` (an unwritable, read-only or full
folder, a dangling link) is the environment's refusal: also one line, naming the path. Anything else is a
programming error and raises.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator


class UserError(Exception):
    """Bad input, a bad file or an unusable environment; the message says what was found and how to fix it."""


USER_ERRORS = (UserError, ValueError, FileNotFoundError)


@contextmanager
def exit_on_user_error(program: str, traceback: bool = False) -> Iterator[None]:
    """Turn a user error inside the block into ``program: error: <message>`` on stderr and exit status 1
    (``traceback=True``, e.g. under --verbose, re-raises instead)."""
    try:
        yield
    except USER_ERRORS as error:
        if traceback:
            raise
        sys.exit(f"{program}: error: {error}")
    except OSError as error:  # the file system refused: unwritable, read-only, full, a dangling link, ...
        if traceback:
            raise
        sys.exit(f"{program}: error: {describe_os_error(error)}")


def describe_os_error(error: OSError) -> str:
    """One line for an OSError: what the system said, the path(s), and where to look."""
    names = " -> ".join(str(name) for name in (error.filename, error.filename2) if name is not None)
    return f"{error.strerror or error} ({names or 'no file named'}). Check the path, its permissions and free space."
