"""Plots drawn and logged off a run's critical path, in one worker thread.

Drawing a run's PNGs with matplotlib takes about as long as its quantum work on a small
experiment; none of the run's next steps reads them. So each step hands its plots (drawn into
a folder of their own, then logged to MLflow) to a :class:`PlotDrawer` and goes on; the run
waits for them before anything that must come after the complete evidence: applying a
promotion, ending the MLflow run, failing it. The figures are built with matplotlib's
object-oriented API (:mod:`registry` never uses ``pyplot``), so drawing in a thread is safe.

A plot handed over under a name is kept until the wait: a later step that shows the same
figure (the record's copy of a gate's plot) logs the kept file instead of drawing it again.

The figures themselves are rendered by :func:`render`, in one drawing process per process
(started with the first figure): rendering is pure Python and C under the GIL, so in a thread
it takes turns with the run's own work, while another process renders on another core.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import sys
import tempfile
import threading
import types
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import registry

log = logging.getLogger("qhybrid.run")

_RENDERER_LOCK = threading.Lock()
_renderer: ProcessPoolExecutor | None = None
_renderer_refused = False  # none can be had here (a daemonic process, no semaphores, ...)
_rendered = 0  # figures the current drawing process has rendered


def _forget_in_child() -> None:
    global _RENDERER_LOCK, _renderer, _rendered
    _RENDERER_LOCK, _renderer, _rendered = threading.Lock(), None, 0  # the parent's, not ours


os.register_at_fork(after_in_child=_forget_in_child)


def _drawing_process() -> ProcessPoolExecutor | None:
    global _renderer, _renderer_refused, _rendered
    with _RENDERER_LOCK:
        if _renderer is None and not _renderer_refused:
            # spawn: the process starts from a clean interpreter, never forked from one that
            # runs Prefect's and MLflow's threads. A spawned process imports the parent's
            # __main__ (a user's script would run again there, unless guarded by
            # `if __name__ == "__main__"`); it needs nothing from it, so it is shown an empty
            # one while it starts (the executor starts it on the first submit).
            main = sys.modules["__main__"]
            sys.modules["__main__"] = types.ModuleType("__main__")
            try:
                # A Ctrl-C reaches the whole process group: the caller stops the run, and
                # its last figures are still drawn and logged, so the drawing process does
                # not stop with it.
                pool = ProcessPoolExecutor(max_workers=1,
                                           mp_context=multiprocessing.get_context("spawn"),
                                           initializer=signal.signal,
                                           initargs=(signal.SIGINT, signal.SIG_IGN))
                pool.submit(registry.prepare_plots)
            except (OSError, ImportError, NotImplementedError, AssertionError,
                    RuntimeError) as exc:  # e.g. a daemonic process, or no semaphores
                log.info("plots are drawn in this process, which cannot start another: %r",
                         exc)
                _renderer_refused = True
                return None
            finally:
                sys.modules["__main__"] = main
            _renderer, _rendered = pool, 0
        return _renderer


def _broken(pool: ProcessPoolExecutor) -> None:
    """Drop a drawing process that died: the next figure starts a new one, unless this one
    died before rendering anything (it would again: its start fails)."""
    global _renderer, _renderer_refused
    with _RENDERER_LOCK:
        if _renderer is pool:
            _renderer = None
            _renderer_refused = _rendered == 0
    pool.shutdown(wait=False, cancel_futures=True)


def _sendable(figure: Callable[..., object]) -> bool:
    """Whether the drawing process can import ``figure`` by its name."""
    if getattr(figure, "__module__", "__main__") == "__main__":
        return False
    try:
        pickle.dumps(figure)
    except (pickle.PicklingError, AttributeError, TypeError):
        return False
    return True


def render(figure: Callable[..., object], *args: object, **kwargs: object) -> None:
    """Call ``figure(*args, **kwargs)`` (a plot function of :mod:`registry`, writing a file
    the arguments name) in this process's drawing process, and wait for it.

    Here instead when ``figure`` cannot be sent there (a function defined inside another or
    in ``__main__``), when this process cannot start one, or when it died (the next figure
    starts a new one).

    Raises:
        Exception: What ``figure`` raised.
    """
    global _rendered
    pool = _drawing_process() if _sendable(figure) else None
    if pool is not None:
        try:
            future = pool.submit(figure, *args, **kwargs)
        except RuntimeError as exc:  # "cannot schedule new futures after shutdown"
            log.info("this figure is drawn here: %r", exc)
        else:
            try:
                future.result()
            except BrokenProcessPool as exc:
                log.warning("the drawing process died (%r); this figure is drawn here", exc)
                _broken(pool)
            else:
                _rendered += 1
                return
    figure(*args, **kwargs)


class PlotDrawer:
    """One worker thread that draws and logs plots in the order they were handed over.

    Thread-safe. The thread starts with the first plot and stops at :meth:`wait`, so a
    long-lived process keeps no idle thread between runs.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []
        self._kept: dict[tuple[str, str], bytes] = {}

    def submit(self, draw: Callable[[Path], object], log_folder: Callable[[Path], None],
               *, keep_as: str | None = None) -> None:
        """Let ``draw`` write files into a new temporary folder, then ``log_folder`` it,
        in the worker thread. With ``keep_as``, the files are kept under that name (and their
        paths in the folder) for :meth:`kept` until the next :meth:`wait`."""

        def job() -> None:
            with tempfile.TemporaryDirectory(prefix="qhybrid-plots-") as folder:
                draw(Path(folder))
                log_folder(Path(folder))
                if keep_as is not None:
                    self._kept.update({(keep_as, path.relative_to(folder).as_posix()):
                                       path.read_bytes()
                                       for path in Path(folder).rglob("*") if path.is_file()})

        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1,
                                                 thread_name_prefix="qhybrid-plots")
            self._pending.append(self._pool.submit(job))

    def kept(self, name: str, path: str) -> bytes | None:
        """The file at ``path`` of the plots handed over as ``name``, once drawn and logged;
        None if there is none. Called from a later plot's ``draw`` (in the worker thread,
        which draws in order), it sees every plot handed over before."""
        return self._kept.get((name, path))

    def wait(self) -> None:
        """Block until every plot handed over so far is drawn and logged.

        Raises:
            Exception: The first error a plot raised (the others are logged), as the step
                that drew it would have raised it.
        """
        with self._lock:
            pending, self._pending = self._pending, []
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        with self._lock:
            if self._pool is None:  # nothing handed over meanwhile: the next plots start afresh
                self._kept = {}
        errors = [error for error in (future.exception() for future in pending)
                  if error is not None]
        for error in errors[1:]:
            log.error("a plot could not be drawn or logged: %r", error)
        if errors:
            raise errors[0]

    def settle(self) -> None:
        """:meth:`wait`, logging instead of raising: for a run that is failing already."""
        try:
            self.wait()
        except Exception as exc:  # noqa: BLE001 - the run's own failure is the one to raise
            log.error("a plot could not be drawn or logged: %r", exc)
