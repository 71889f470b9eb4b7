"""The append-only promotion log: one JSON line per decision, since aliases keep no history."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from pydantic import ValidationError

from qhybrid.core import PromotionLogRecord, TrackingError


def append_decision(path: Path, record: PromotionLogRecord) -> None:
    """Append one record, whole or not at all, under an exclusive lock.

    Raises:
        TrackingError: The log cannot be written.
    """
    line = record.model_dump_json() + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError as exc:
        raise TrackingError(f"cannot append to promotion log {path}: {exc}") from exc


def read_decisions(path: Path, experiment: str | None = None) -> list[PromotionLogRecord]:
    """Every record in the log, oldest first, optionally for one experiment.

    Raises:
        TrackingError: A line is not a valid record.
    """
    if not path.exists():
        return []
    records: list[PromotionLogRecord] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = PromotionLogRecord.model_validate_json(line)
        except ValidationError as exc:
            raise TrackingError(f"{path}:{number}: not a promotion record: {exc}") from exc
        if experiment is None or record.experiment == experiment:
            records.append(record)
    return records
