"""Input pins: every dataset must match the md5 that dvc.lock records for it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from qhybrid.core import DataError, regular_file


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


def _locked_outs(lock_path: Path) -> dict[str, tuple[str, str]]:
    try:
        lock = yaml.safe_load(lock_path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise DataError(f"{lock_path} is missing; run `dvc repro`", field="dvc.lock") from exc
    except yaml.YAMLError as exc:
        raise DataError(f"{lock_path} is not valid YAML: {exc}", field="dvc.lock") from exc
    outs: dict[str, tuple[str, str]] = {}
    for stage, body in (lock.get("stages") or {}).items():
        for out in body.get("outs", []):
            outs[str(Path(out["path"]))] = (out.get("md5", ""), stage)
    return outs


def file_md5(path: Path) -> str:
    """md5 of a file's bytes: what DVC 3 records for a single-file output."""
    digest = hashlib.md5()  # noqa: S324 - DVC's content hash, not a security boundary
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def pin_inputs(
    paths: list[str], project_root: Path, *, allow_unpinned: bool = False,
    field: str = "dataset.path",
) -> dict[str, DataPin]:
    """Check each input against dvc.lock.

    Args:
        paths: Input paths relative to ``project_root``.
        project_root: The folder holding dvc.lock.
        allow_unpinned: Accept files that differ from (or are absent in) dvc.lock. The caller
            must record that it did.
        field: The field to name in errors.

    Returns:
        The pin of every input.

    Raises:
        DataError: A file is missing, or does not match dvc.lock and ``allow_unpinned`` is off.
    """
    outs = _locked_outs(project_root / "dvc.lock")
    pins: dict[str, DataPin] = {}
    for rel in paths:
        full = project_root / rel
        regular_file(full, field=field, what="dataset", error=DataError,
                     missing="; run `dvc repro` or `dvc pull` first")
        locked, stage = outs.get(str(Path(rel)), (None, None))
        pin = DataPin(path=rel, md5=file_md5(full), locked_md5=locked, stage=stage)
        if not pin.matches and not allow_unpinned:
            why = "is not tracked in dvc.lock" if locked is None else (
                f"has md5 {pin.md5} but dvc.lock pins {locked} (modified since `dvc repro`?)"
            )
            raise DataError(
                f"{rel} {why}; restore it with `dvc checkout`, or pass --allow-unpinned-data "
                "to run on it anyway (recorded on the run)",
                field=field,
            )
        pins[rel] = pin
    return pins
