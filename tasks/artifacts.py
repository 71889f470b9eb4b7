"""Prefect artifacts published off the flow's thread.

An artifact is one request to the Prefect API, about 20 ms, most of it the server's own
write; the flow's next step does not read it. :func:`publish` hands the request to a small
pool of threads and returns: the thread waits on the socket, not on the interpreter, while the
flow goes on. Each request runs in a copy of the caller's context, so Prefect attaches the
artifact to the calling task run and flow run, with the caller's settings (API address).

:func:`settle` waits for every artifact handed over and raises the first one's error.
``apply-promotion`` calls it before it registers anything (a gate's artifact that could not be
published stops the promotion, as it stopped the gate when artifacts were published in line),
``finish-run`` before the flow ends, and the guard of a failing flow after it has ended the
records. The artifacts waited for are this process's: a process runs one flow at a time (a
worker's flow run, a command, the service's child flows one after another).
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

log = logging.getLogger("qhybrid.run")

_LOCK = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pending: list[Future[object]] = []


def _forget_in_child() -> None:
    global _LOCK, _pool, _pending
    _LOCK, _pool, _pending = threading.Lock(), None, []  # the parent's threads are not ours


os.register_at_fork(after_in_child=_forget_in_child)


def publish(create: Callable[..., object], /, **arguments: object) -> None:
    """Call ``create(**arguments)`` (e.g. Prefect's ``create_markdown_artifact``) on a
    publishing thread, in the caller's context; :func:`settle` waits for it."""
    global _pool
    context = contextvars.copy_context()

    def call() -> object:
        return context.run(create, **arguments)

    with _LOCK:
        if _pool is None:
            # A few at once: a flow's last artifacts are published together, and the server
            # takes its requests in parallel.
            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="qhybrid-artifacts")
        _pending.append(_pool.submit(call))


def settle(timeout: float | None = None) -> None:
    """Wait for every artifact :func:`publish` was handed (in any thread of this process).

    Args:
        timeout: Seconds to wait at most; None waits as long as they take.

    Raises:
        Exception: The first error a publication raised (the others are logged).
        TimeoutError: Some were not published within ``timeout`` (they are still waited for
            by the next call).
    """
    with _LOCK:
        handed = list(_pending)
        _pending.clear()
    not_done = wait(handed, timeout=timeout).not_done
    if not_done:
        with _LOCK:
            _pending.extend(not_done)
    errors = [error for future in handed
              if future not in not_done and (error := future.exception()) is not None]
    for error in errors[1:]:
        log.error("a Prefect artifact could not be published: %r", error)
    if errors:
        raise errors[0]
    if not_done:
        raise TimeoutError(f"{len(not_done)} Prefect artifact(s) not published within "
                           f"{timeout} s")
