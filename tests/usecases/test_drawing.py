"""A run's plot thread: plots are drawn and logged off the caller's thread, in order, and all
of them (or the first error) are in when the run waits; no thread is left between runs."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from qhybrid_usecases import PlotDrawer


def _threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("qhybrid-plots")]


def test_plots_are_drawn_off_the_callers_thread_and_all_logged_by_wait() -> None:
    drawer = PlotDrawer()
    release = threading.Event()
    logged: list[tuple[str, list[str], bool]] = []

    def draw(name: str) -> object:
        def write(folder: Path) -> None:
            # Blocks until the caller has gone on: a drawer that drew in the caller's
            # thread would time out here and record that it was never released.
            released = release.wait(timeout=30)
            (folder / f"{name}.png").write_bytes(b"png")
            logged.append((threading.current_thread().name, [], released))
        return write

    def log_folder(folder: Path) -> None:
        logged[-1][1].extend(sorted(p.name for p in folder.iterdir()))

    drawer.submit(draw("first"), log_folder)
    drawer.submit(draw("second"), log_folder)
    release.set()  # only reached because submit returned without drawing
    drawer.wait()
    assert [(files, released) for _, files, released in logged] == [
        (["first.png"], True), (["second.png"], True)]
    assert all(name.startswith("qhybrid-plots") for name, _, _ in logged)
    assert _threads() == []  # the thread stops with the run's wait
    drawer.wait()  # nothing pending: returns at once


def test_wait_raises_the_first_error_and_settle_only_logs_it(caplog) -> None:
    drawer = PlotDrawer()
    done: list[str] = []

    def broken(folder: Path) -> None:
        raise OSError("disk full")

    drawer.submit(broken, lambda folder: None)
    drawer.submit(lambda folder: done.append("after"), lambda folder: None)
    with pytest.raises(OSError, match="disk full"):
        drawer.wait()
    assert done == ["after"]  # a failed plot does not stop the ones after it

    drawer.submit(broken, lambda folder: None)
    with caplog.at_level(logging.ERROR, logger="qhybrid.run"):
        drawer.settle()
    assert "disk full" in caplog.text
    assert _threads() == []


def test_a_kept_plot_is_there_for_later_plots_until_the_wait() -> None:
    drawer = PlotDrawer()
    seen: list[bytes | None] = []

    def gate(folder: Path) -> None:
        (folder / "convergence.png").write_bytes(b"the gate's figure")

    drawer.submit(gate, lambda folder: None, keep_as="gate-run")
    drawer.submit(lambda folder: None, lambda folder: None)  # not kept
    drawer.submit(lambda folder: seen.extend([drawer.kept("gate-run", "convergence.png"),
                                              drawer.kept("gate-run", "other.png"),
                                              drawer.kept("another-run", "convergence.png")]),
                  lambda folder: None)
    drawer.wait()
    assert seen == [b"the gate's figure", None, None]
    assert drawer.kept("gate-run", "convergence.png") is None  # the next run starts empty
