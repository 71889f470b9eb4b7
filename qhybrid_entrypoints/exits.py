"""What each error class means at the command line: its exit code.

The kernel's errors know their layer and whether they are transient; the exit code is this
entry point's business (an HTTP API maps the same classes to statuses).
"""

from __future__ import annotations

from qhybrid.core import (
    BackendError,
    InvalidInputError,
    PostProcessingError,
    QhybridError,
    ReplayMismatchError,
    RunCancelledError,
    TrackingError,
)

EXIT_OK = 0
EXIT_BUG = 1
EXIT_REFUSED = 3
EXIT_INTERRUPTED = 130
"""Ctrl-C (SIGINT), as shells report a process stopped by it: 128 + 2."""
EXIT_TERMINATED = 143
"""SIGTERM: 128 + 15."""

EXIT_CODES: dict[type[QhybridError], int] = {
    InvalidInputError: 2,
    BackendError: 4,
    PostProcessingError: 5,
    TrackingError: 6,
    ReplayMismatchError: 7,
    RunCancelledError: 8,
}
"""Exit code by error class; a subclass takes its nearest listed ancestor's code."""


def exit_code(exc: QhybridError) -> int:
    """The exit code for ``exc``: its nearest class in :data:`EXIT_CODES`, else 1."""
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return EXIT_BUG
