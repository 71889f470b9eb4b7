"""Refusals that need no heavy import, made before a command loads qiskit, MLflow or Prefect.

A misspelt backend, an unknown fake device, a missing token, a command started outside the
project or tampered data then fails in a fraction of a second instead of after seconds of
imports. Each check here gives the same verdict and message as the authoritative one below it
(``qhybrid_usecases.backends_of``, ``backends.fake_device``, ``registry.pin_inputs``), which
the use cases' preflight runs again, with the checks that do need qiskit (circuit width) and
the state store; tests/cli/test_terminal_early.py holds each pair to the same answers.
"""

from __future__ import annotations

import functools
import hashlib
import re
from importlib import metadata
from pathlib import Path

from qhybrid.core import (
    BackendNameError,
    DataError,
    ExperimentSpec,
    RunOptions,
    Settings,
    parse_backend_name,
    regular_file,
)

_DEVICE_FILE = re.compile(r"^qiskit_ibm_runtime/fake_provider/backends/[a-z0-9_]+/(fake_[a-z0-9_]+)"
                          r"\.py$")


def _class_name(device: str) -> str:
    return "".join(part.capitalize() for part in device.split("_")) + "V2"


@functools.cache
def fake_devices() -> frozenset[str]:
    """The fake devices qiskit-ibm-runtime ships, read from its installed files.

    A device is ``fake_<name>`` when its module defines ``Fake<Name>V2``, the class
    ``backends.fake_device`` instantiates; reading the files costs milliseconds where importing
    qiskit-ibm-runtime costs about a second.
    """
    found: set[str] = set()
    for file in metadata.files("qiskit-ibm-runtime") or ():
        match = _DEVICE_FILE.match(file.as_posix())
        if match and f"class {_class_name(match.group(1))}(" in file.read_text(encoding="utf-8"):
            found.add(match.group(1))
    return frozenset(found)


def backends_of(spec: ExperimentSpec, options: RunOptions, *, kind: str) -> dict[str, str]:
    """The backends a run or promotion of ``spec`` will use, by the field that names them (as
    ``qhybrid_usecases.backends_of``)."""
    if kind in ("run", "sweep"):
        return {"--backend": options.backend or spec.gates.ideal.backend}
    hardware = spec.gates.hardware
    return {"gates.ideal.backend": spec.gates.ideal.backend,
            "gates.hardware.backend": hardware.backend,
            **{f"gates.hardware.fallback.{i}": name for i, name in enumerate(hardware.fallback)}}


def check_backends(spec: ExperimentSpec, settings: Settings, options: RunOptions, *,
                   kind: str) -> None:
    """Every backend name parses, names a shipped fake device, and a real device has a token.

    Raises:
        BackendNameError: Naming the field.
    """
    for field, text in backends_of(spec, options, kind=kind).items():
        name = parse_backend_name(text, field=field)
        if name.is_fake and name.device not in fake_devices():
            raise BackendNameError(
                f"unknown fake device '{name.device}' (examples: fake_manila, fake_lima, "
                "fake_guadalupe)", field=field)
        if name.is_real_hardware and settings.ibm_token is None and not settings.ibm_token_block:
            raise BackendNameError(
                f"{name} is real IBM hardware: set QHYBRID_IBM_TOKEN (or QHYBRID_IBM_TOKEN_BLOCK, "
                "a Prefect Secret block) to use it", field=field)


def check_data(spec: ExperimentSpec, settings: Settings, *, allow_unpinned: bool) -> None:
    """The project root holds dvc.yaml, every input file the spec names (the dataset, a file of
    observables or of sweep points) exists under it, and its md5 is the one dvc.lock pins (as
    ``registry.pin_inputs``, which the run calls again to record the pin).

    Raises:
        DataError: Naming ``QHYBRID_PROJECT_ROOT``, ``dvc.lock`` or the input's field
            (``dataset.path``, ``family.observables_path``, ``sweep.points.path``).
    """
    root = settings.project_root
    if not any((root / name).is_file() for name in ("dvc.yaml", "dvc.lock")):
        raise DataError(
            f"{root} is not the qhybrid project root (it has no dvc.yaml): run qhybrid "
            "from the project root, or set QHYBRID_PROJECT_ROOT to it",
            field="QHYBRID_PROJECT_ROOT")
    if not (root / "dvc.lock").is_file():
        raise DataError(f"{root / 'dvc.lock'} is missing; run `dvc repro` to pin the data",
                        field="dvc.lock")
    for field, rel in spec.input_paths().items():
        regular_file(root / rel, field=field, what="dataset", error=DataError,
                     missing="; run `dvc repro` or `dvc pull` first")
        if allow_unpinned:
            continue
        locked, stage = _pin(root, root / rel)
        md5 = _md5(root / rel)
        if locked is None or md5 == locked:
            continue  # matches, or dvc.lock does not pin it: DVC's own reading decides later
        raise DataError(
            f"{rel} has md5 {md5} but dvc.lock pins {locked} (modified since `dvc repro`?); "
            f"restore it with `dvc checkout --force {rel}` (from DVC's cache) or `dvc repro "
            f"{stage}` (regenerates it); or pass --allow-unpinned-data to run on it anyway "
            "(recorded on the run)", field=field)


def _pin(root: Path, path: Path) -> tuple[str | None, str | None]:
    """What dvc.lock pins for ``path``, and the stage producing it.

    Read from dvc.lock directly: importing and opening DVC takes about a second, which is the
    whole budget here. ``registry.pin_inputs`` asks DVC itself when the run starts.
    """
    import yaml

    try:
        lock = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None, None  # unreadable: left to DVC's own reading, and its message
    rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    for stage, body in (lock.get("stages") or {}).items():
        for out in (body or {}).get("outs", []):
            # Only DVC 3's plain md5; older entries hash text files another way.
            if Path(out.get("path", "")).as_posix() == rel and out.get("hash") == "md5":
                return out.get("md5"), stage
    return None, None


def _md5(path: Path) -> str:
    digest = hashlib.md5()  # noqa: S324 - DVC's content hash, not a security boundary
    digest.update(path.read_bytes())
    return digest.hexdigest()
