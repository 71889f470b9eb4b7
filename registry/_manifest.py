"""Run manifests on disk: written atomically, read back with validation."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from qhybrid.core import InvalidInputError, RunManifest, TrackingError, read_input, write_whole


def write_manifest(path: Path, manifest: RunManifest) -> Path:
    """Write the manifest as JSON; a reader never sees a partial file.

    Raises:
        TrackingError: The file cannot be written.
    """
    try:
        write_whole(path, manifest.model_dump_json(indent=1))
    except OSError as exc:
        raise TrackingError(f"cannot write manifest {path}: {exc}") from exc
    return path


def read_manifest(path: Path) -> RunManifest:
    """Read and validate a manifest.

    Raises:
        InvalidInputError: The file is missing, not a regular file, too large, not UTF-8, or is
            not a valid manifest (field MANIFEST; the message names the manifest's field).
    """
    text = read_input(path, field="MANIFEST", what="manifest")
    try:
        return RunManifest.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "<manifest>"
        raise InvalidInputError(f"{path}: {where}: {first['msg']}", field="MANIFEST") from exc
