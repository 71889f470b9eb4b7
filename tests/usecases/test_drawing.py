"""A run's plot thread: plots are drawn and logged off the caller's thread, in order, and all
of them (or the first error) are in when the run waits; no thread is left between runs."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from qhybrid_usecases import PlotDrawer
from qhybrid_usecases._drawing import render

ROOT = Path(__file__).resolve().parents[2]


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


def _record_pid(path: Path) -> None:
    """A figure, as far as ``render`` can tell: writes the process id of whoever draws."""
    path.write_text(str(os.getpid()))


def test_figures_are_rendered_in_a_drawing_process_of_their_own(tmp_path: Path) -> None:
    render(_record_pid, tmp_path / "a")
    render(_record_pid, tmp_path / "b")
    drawer_pid = int((tmp_path / "a").read_text())
    assert drawer_pid != os.getpid() and int((tmp_path / "b").read_text()) == drawer_pid

    def local(path: Path) -> None:  # cannot be sent to another process: drawn here
        _record_pid(path)

    render(local, tmp_path / "c")
    assert int((tmp_path / "c").read_text()) == os.getpid()

    with pytest.raises(OSError, match="No such file"):  # the figure's error, raised here
        render(_record_pid, tmp_path / "missing" / "d")


def test_a_ctrl_c_to_the_process_group_leaves_the_drawing_process_drawing(
        tmp_path: Path) -> None:
    render(_record_pid, tmp_path / "before")
    drawer_pid = int((tmp_path / "before").read_text())
    ignored = next(int(line.split()[1], 16) for line in
                   Path(f"/proc/{drawer_pid}/status").read_text().splitlines()
                   if line.startswith("SigIgn:"))
    assert ignored & (1 << (signal.SIGINT - 1))  # before any signal: no race to lose
    os.kill(drawer_pid, signal.SIGINT)  # what a terminal's Ctrl-C sends it
    render(_record_pid, tmp_path / "after")  # the run's last figures are still drawn there
    assert int((tmp_path / "after").read_text()) == drawer_pid


def test_a_drawing_process_that_died_is_replaced(tmp_path: Path) -> None:
    render(_record_pid, tmp_path / "before")
    os.kill(int((tmp_path / "before").read_text()), signal.SIGKILL)
    render(_record_pid, tmp_path / "during")  # drawn here, or by a new drawing process
    render(_record_pid, tmp_path / "after")
    pids = {name: int((tmp_path / name).read_text()) for name in ("before", "during", "after")}
    assert pids["after"] not in (pids["before"], os.getpid()), pids


_UNGUARDED_SCRIPT = """
import sys
from pathlib import Path
out = Path(sys.argv[1])
with (out / "runs").open("a") as runs:
    runs.write("ran\\n")
from qhybrid_usecases._drawing import render
import registry
render(registry.histogram_png, {"01": 3, "10": 1}, out / "histogram.png", title="t")
"""


def test_the_drawing_process_does_not_run_the_callers_script_again(tmp_path: Path) -> None:
    # A script without `if __name__ == "__main__"`: a spawned process would import it again.
    script = tmp_path / "script.py"
    script.write_text(_UNGUARDED_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                          text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "runs").read_text() == "ran\n"
    assert (tmp_path / "histogram.png").read_bytes().startswith(b"\x89PNG")
