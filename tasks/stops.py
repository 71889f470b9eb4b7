"""A SIGTERM or a Ctrl-C the flow must not lose.

During a flow run Prefect's SIGTERM bridge raises ``TerminationSignal`` wherever the main
thread happens to be, and a Ctrl-C raises ``KeyboardInterrupt`` there. Two places lose them:

- a finalizer (``__del__``, a weakref callback): Python prints the error and drops it, and
  the flow goes on to its end as if nothing had been sent;
- Prefect creating a task run: its crash handler fails with ``ValueError('Task run is not
  set')``, which replaces the signal, and the flow run ends FAILED instead of CRASHED.

A command that runs a flow in its own main thread (the CLI) keeps the signals: it calls the
flow inside :func:`keeping_stops`, and the flow's guard (:func:`remembering_stops`) puts a
handler in front of each signal's (Prefect's bridge, the command's Ctrl-C handler) that notes
the signal before passing it on. The flow stops at its next submission
(:func:`raise_if_stopped`) and ends crashed, its records ended.

A worker's or runner's process is not armed: there Prefect's runner cancels a flow run
through its own bridge, which must stay the installed handler.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from types import FrameType

from prefect.exceptions import TerminationSignal

_ARMED: ContextVar[bool] = ContextVar("qhybrid_keep_stops", default=False)
_KEPT: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)
_SEEN: dict[int, threading.Event] = {signum: threading.Event() for signum in _KEPT}


def _forget() -> None:
    for seen in _SEEN.values():
        seen.clear()


@contextlib.contextmanager
def keeping_stops() -> Iterator[None]:
    """Arm :func:`remembering_stops` for the flows called inside the block (this thread)."""
    token = _ARMED.set(True)
    _forget()
    try:
        yield
    finally:
        _ARMED.reset(token)
        _forget()


def _stop(signum: int) -> BaseException:
    """What a signal raises in the flow: a Ctrl-C's ``KeyboardInterrupt``, Prefect's
    ``TerminationSignal`` for SIGTERM."""
    return KeyboardInterrupt() if signum == signal.SIGINT else TerminationSignal(signal=signum)


@contextlib.contextmanager
def remembering_stops() -> Iterator[None]:
    """Inside the block, a SIGTERM or a Ctrl-C is noted before the handler in place sees it
    (when armed and in the main thread; otherwise the block runs as it is)."""
    if not _ARMED.get() or threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {signum: signal.getsignal(signum) for signum in _KEPT}

    def remember(signum: int, frame: FrameType | None) -> None:
        _SEEN[signum].set()
        handler = handlers[signum]
        if callable(handler):
            handler(signum, frame)
        else:  # no Python handler to pass it to: stop as the flow engine would
            raise _stop(signum)

    for signum in _KEPT:
        signal.signal(signum, remember)
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def stopped(signum: int = signal.SIGTERM) -> bool:
    """Whether signal ``signum`` (SIGTERM or SIGINT) reached this process inside
    :func:`remembering_stops`."""
    return _SEEN[signum].is_set()


def raise_if_stopped() -> None:
    """Stop work if a SIGTERM or a Ctrl-C was noted, even one the flow engine never saw.

    Raises:
        KeyboardInterrupt: A Ctrl-C (SIGINT) reached the process.
        TerminationSignal: A SIGTERM reached the process.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        if _SEEN[signum].is_set():
            raise _stop(signum)
