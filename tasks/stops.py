"""A SIGTERM the flow must not lose.

During a flow run Prefect's SIGTERM bridge raises ``TerminationSignal`` wherever the main
thread happens to be. Two places lose it:

- a finalizer (``__del__``, a weakref callback): Python prints the error and drops it, and
  the flow goes on to its end as if nothing had been sent;
- Prefect creating a task run: its crash handler fails with ``ValueError('Task run is not
  set')``, which replaces the signal, and the flow run ends FAILED instead of CRASHED.

A command that runs a flow in its own main thread (the CLI) keeps the signal: it calls the
flow inside :func:`keeping_stops`, and the flow's guard (:func:`remembering_stops`) puts a
handler in front of Prefect's bridge that notes the signal before passing it on. The flow
stops at its next submission (:func:`raise_if_stopped`) and ends crashed, its records ended.

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
_SEEN = threading.Event()


@contextlib.contextmanager
def keeping_stops() -> Iterator[None]:
    """Arm :func:`remembering_stops` for the flows called inside the block (this thread)."""
    token = _ARMED.set(True)
    _SEEN.clear()
    try:
        yield
    finally:
        _ARMED.reset(token)
        _SEEN.clear()


@contextlib.contextmanager
def remembering_stops() -> Iterator[None]:
    """Inside the block, a SIGTERM is noted before Prefect's bridge sees it (when armed and
    in the main thread; otherwise the block runs as it is)."""
    if not _ARMED.get() or threading.current_thread() is not threading.main_thread():
        yield
        return
    bridge = signal.getsignal(signal.SIGTERM)

    def remember(signum: int, frame: FrameType | None) -> None:
        _SEEN.set()
        if callable(bridge):
            bridge(signum, frame)
        else:  # no Python handler to pass it to: stop as the flow engine would
            raise TerminationSignal(signal=signum)

    signal.signal(signal.SIGTERM, remember)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, bridge)


def stopped() -> bool:
    """Whether a SIGTERM reached this process inside :func:`remembering_stops`."""
    return _SEEN.is_set()


def raise_if_stopped() -> None:
    """Stop work if a SIGTERM was noted, even one the flow engine never saw.

    Raises:
        TerminationSignal: A SIGTERM reached the process.
    """
    if _SEEN.is_set():
        raise TerminationSignal(signal=signal.SIGTERM)
