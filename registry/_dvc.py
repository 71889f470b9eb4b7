"""Input pins: every dataset must match the md5 that dvc.lock records for it.

DVC itself reads the project (dvc.yaml, params.yaml and dvc.lock, with its own schema and
templating): which stage produces a file, and what dvc.lock pins for it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from qhybrid.core import DataError, regular_file

PROJECT_FILES = ("dvc.yaml", "dvc.lock")
"""What marks a folder as the project root."""


@dataclass(frozen=True)
class DataPin:
    """One input file and its DVC pin.

    Attributes:
        path: Relative to the project root.
        md5: The file's md5 now.
        locked_md5: What dvc.lock records (None if dvc.lock does not track the file).
        stage: The dvc.yaml stage that produces it.
    """

    path: str
    md5: str
    locked_md5: str | None
    stage: str | None

    @property
    def matches(self) -> bool:
        """True when the file is exactly what dvc.lock pins."""
        return self.locked_md5 is not None and self.md5 == self.locked_md5

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form for tags and manifests."""
        return {"md5": self.md5, "dvc_lock_md5": self.locked_md5, "stage": self.stage,
                "matches_lock": self.matches}


def check_project_root(project_root: Path) -> None:
    """Refuse a folder that is not the project root (e.g. qhybrid run from elsewhere).

    Raises:
        DataError: ``project_root`` holds neither dvc.yaml nor dvc.lock (field
            ``QHYBRID_PROJECT_ROOT``).
    """
    if not any((project_root / name).is_file() for name in PROJECT_FILES):
        raise DataError(
            f"{project_root} is not the qhybrid project root (it has no dvc.yaml): run qhybrid "
            "from the project root, or set QHYBRID_PROJECT_ROOT to it",
            field="QHYBRID_PROJECT_ROOT",
        )


_PIPELINE_FILES = ("dvc.yaml", "dvc.lock", "params.yaml")
_READ: dict[tuple[Path, tuple[tuple[int, int, int] | None, ...]],
            dict[Path, tuple[str | None, str]]] = {}
_READ_LOCK = threading.Lock()


def _locked_outs(project_root: Path) -> dict[Path, tuple[str | None, str]]:
    """Each stage output's absolute path, with what dvc.lock pins for it and its stage.

    Read by DVC once per state of the pipeline's files (dvc.yaml, dvc.lock, params.yaml: their
    inode, size and modification time) in this process: a command checks its inputs before
    its flow starts, and the flow checks them again, from the same files.
    """
    key = (project_root.resolve(), tuple(_stat(project_root / name) for name in _PIPELINE_FILES))
    with _READ_LOCK:
        if key not in _READ:
            _READ.clear()  # only the files' latest state is ever asked for again
            _READ[key] = _read_locked_outs(project_root)
        return _READ[key]


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _read_locked_outs(project_root: Path) -> dict[Path, tuple[str | None, str]]:
    # DVC ships no type information.
    from dvc.exceptions import DvcException  # type: ignore[import-untyped]
    from dvc.fs import LocalFileSystem  # type: ignore[import-untyped]
    from dvc.repo import Repo  # type: ignore[import-untyped]

    if not (project_root / "dvc.yaml").is_file():
        raise DataError(f"{project_root / 'dvc.yaml'} is missing; the data pins cannot be read",
                        field="dvc.yaml")
    try:
        # The local file system keeps DVC on this folder (not the git root or the cwd), and
        # uninitialized lets a copy without .dvc/ be read.
        with Repo(str(project_root), fs=LocalFileSystem(), uninitialized=True) as repo:
            return {Path(out.fs_path): (out.hash_info.value if out.hash_info else None,
                                        out.stage.name)
                    for out in repo.index.outs}
    except DvcException as exc:
        raise DataError(f"DVC cannot read the pipeline in {project_root}: {exc}",
                        field="dvc.yaml") from exc


def file_md5(path: Path) -> str:
    """md5 of a file's bytes: what DVC 3 records for a single-file output."""
    digest = hashlib.md5()  # noqa: S324 - DVC's content hash, not a security boundary
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def restore_advice(path: str, stage: str | None) -> str:
    """The commands that put ``path`` back as dvc.lock pins it."""
    if stage is None:
        return f"add a dvc.yaml stage that produces {path}, then `dvc repro`"
    return (f"restore it with `dvc checkout --force {path}` (from DVC's cache) or "
            f"`dvc repro {stage}` (regenerates it)")


def pin_inputs(
    paths: list[str] | Mapping[str, str], project_root: Path, *, allow_unpinned: bool = False,
    field: str = "dataset.path",
) -> dict[str, DataPin]:
    """Check each input against dvc.lock (read once, however many inputs).

    Args:
        paths: Input paths relative to ``project_root``; or field -> path, naming each input's
            own field in errors.
        project_root: The folder holding dvc.yaml and dvc.lock.
        allow_unpinned: Accept files that differ from (or are absent in) dvc.lock. The caller
            must record that it did.
        field: The field to name in errors (of a list of paths).

    Returns:
        The pin of every input.

    Raises:
        DataError: ``project_root`` is not the project root; dvc.lock is missing; DVC cannot
            read its pipeline; a file is missing, or does not match dvc.lock and
            ``allow_unpinned`` is off.
    """
    check_project_root(project_root)
    if not (project_root / "dvc.lock").is_file():
        raise DataError(f"{project_root / 'dvc.lock'} is missing; run `dvc repro` to pin the data",
                        field="dvc.lock")
    inputs = (list(paths.items()) if isinstance(paths, Mapping)
              else [(field, rel) for rel in paths])
    for field, rel in inputs:
        regular_file(project_root / rel, field=field, what="dataset", error=DataError,
                     missing="; run `dvc repro` or `dvc pull` first")
    outs = _locked_outs(project_root)
    pins: dict[str, DataPin] = {}
    for field, rel in inputs:
        full = project_root / rel
        locked, stage = outs.get(full.resolve(), outs.get(full.absolute(), (None, None)))
        pin = DataPin(path=rel, md5=file_md5(full), locked_md5=locked, stage=stage)
        if not pin.matches and not allow_unpinned:
            if stage is None:
                why = "is not the output of any dvc.yaml stage"
            elif locked is None:
                why = f"is not pinned in dvc.lock (stage {stage} has not run: `dvc repro {stage}`)"
            else:
                why = f"has md5 {pin.md5} but dvc.lock pins {locked} (modified since `dvc repro`?)"
            raise DataError(
                f"{rel} {why}; {restore_advice(rel, stage)}; or pass --allow-unpinned-data to "
                "run on it anyway (recorded on the run)",
                field=field,
            )
        pins[rel] = pin
    return pins
