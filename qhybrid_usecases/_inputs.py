"""Inputs and preflight: everything that can be checked before a flow starts. Writes nothing."""

from __future__ import annotations

import json
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backends import StateStore, check_width, open_engine
from qhybrid.core import (
    CircuitFamily,
    DataError,
    ExperimentSpec,
    FamilySpec,
    RunOptions,
    Settings,
    SpecError,
    parse_json,
    parse_yaml,
    read_input,
)
from qhybrid.experiments import Workload, build_workload, load_instance
from qhybrid_usecases._sweep_points import point_source
from registry import DataPin, file_md5, pin_inputs


@dataclass(frozen=True)
class Inputs:
    """A spec's data, checked against dvc.lock, and the workload built on it.

    Attributes:
        workload: The family's circuits and observable on the instance.
        pins: Every input file and its DVC pin.
        overrides: One sentence per input that does not match dvc.lock (allowed and recorded).
    """

    workload: Workload
    pins: dict[str, DataPin]
    overrides: tuple[str, ...]


def load_inputs(spec: ExperimentSpec, settings: Settings, *, allow_unpinned_data: bool) -> Inputs:
    """Check the data against dvc.lock, load it and build the workload.

    Raises:
        DataError: Missing or unpinned data (unless allowed), or data of the wrong shape.
        SpecError: Data that does not fit the family, or fixed parameters of the wrong length.
    """
    # Every input file (the dataset, a file of observables or of sweep points): pinned by
    # dvc.lock, and recorded on the run.
    pins = pin_inputs(spec.input_paths(), settings.project_root,
                      allow_unpinned=allow_unpinned_data)
    overrides = tuple(_override(pin) for pin in pins.values() if not pin.matches)
    workload = build_spec_workload(spec, settings.project_root)
    if spec.parameters is not None:
        workload.circuit_points(np.array(spec.parameters))
    return Inputs(workload=workload, pins=pins, overrides=overrides)


def _override(pin: DataPin) -> str:
    if pin.locked_md5 is None:
        return f"{pin.path} (md5 {pin.md5}) is not an output in dvc.lock"
    return f"{pin.path} has md5 {pin.md5}, but dvc.lock pins {pin.locked_md5}"


_BUILT_KEPT = 8


def reload_workload(
    spec: ExperimentSpec, settings: Settings, pins: Mapping[str, Mapping[str, object]],
    built: MutableMapping[str, Workload] | None = None,
) -> Workload:
    """The workload of a run whose inputs were pinned at its start, for a later step.

    Every input is checked against its pin each time. With ``built``, a workload built for
    the same spec and pins is taken from there, and a new one is kept there (the last few):
    a workload is immutable, and a promotion's steps would otherwise build it seven times.

    Raises:
        DataError: An input changed since the run started.
    """
    for path, pin in pins.items():
        now = file_md5(settings.project_root / path)
        if now != pin["md5"]:
            raise DataError(f"{path} changed while the run was in progress (md5 {pin['md5']} "
                            f"at the start, {now} now)", field=_field_of(spec, path))
    if built is None:
        return build_spec_workload(spec, settings.project_root)
    key = json.dumps([spec.model_dump(mode="json"), str(settings.project_root),
                      sorted((path, str(pin["md5"])) for path, pin in pins.items())],
                     sort_keys=True)
    if key not in built:
        if len(built) >= _BUILT_KEPT:
            built.pop(next(iter(built)))
        built[key] = build_spec_workload(spec, settings.project_root)
    return built[key]


def _field_of(spec: ExperimentSpec, path: str) -> str:
    return next((f for f, p in spec.input_paths().items() if p == path), "dataset.path")


def read_family(spec: ExperimentSpec, root: Path) -> FamilySpec:
    """The spec's family with everything it reads from files in it: a circuit family's
    observables file (``family.observables_path``, JSON or YAML) parsed and checked by the
    family's own rules. Checks no pin: the caller has.

    Raises:
        DataError: The file cannot be read or parsed (naming ``family.observables_path``).
        SpecError: Its observables break the family's rules (naming the field).
    """
    family = spec.family
    if not isinstance(family, CircuitFamily) or family.observables_path is None:
        return family
    rel = family.observables_path
    field = "family.observables_path"
    text = read_input(root / rel, field=field, what="observables file", error=DataError,
                      missing="; run `dvc repro` or `dvc pull` first")
    parse = parse_json if Path(rel).suffix == ".json" else parse_yaml
    data = parse(text, source=rel, field=field, error=DataError)
    return family.with_observables(data, source=rel)


def build_spec_workload(spec: ExperimentSpec, root: Path) -> Workload:
    """The workload of ``spec`` on its dataset under ``root`` (and its observables file).

    Raises:
        DataError: An input cannot be read, or data of the wrong shape.
        SpecError: Data that does not fit the family.
    """
    return build_workload(read_family(spec, root), load_instance(root / spec.dataset.path))


def backends_of(spec: ExperimentSpec, options: RunOptions, *, kind: str) -> dict[str, str]:
    """The backends a run or promotion of ``spec`` will use, by the field that names them."""
    if kind in ("run", "sweep"):
        return {"--backend": options.backend or spec.gates.ideal.backend}
    hardware = spec.gates.hardware
    return {"gates.ideal.backend": spec.gates.ideal.backend,
            "gates.hardware.backend": hardware.backend,
            **{f"gates.hardware.fallback.{i}": name for i, name in enumerate(hardware.fallback)}}


def preflight(
    spec: ExperimentSpec, settings: Settings, options: RunOptions, *, kind: str
) -> Inputs:
    """Everything that can be checked before a flow starts: the state store URL, every backend
    and device (and the token a real one needs), the data pins, parameters and circuit width.

    Args:
        spec: The validated spec.
        settings: With any IBM token already resolved.
        options: The run options.
        kind: ``run``, ``promotion`` or ``sweep``.

    Returns:
        The checked inputs.

    Raises:
        InvalidInputError: Naming the field at fault (a promotion's missing gate policy too).
        TrackingError: The state store cannot be opened.
    """
    if kind == "promotion":
        spec.gates.check_promotable()
    if kind == "sweep" and spec.sweep is None:
        raise SpecError("the spec has no sweep section; add one (docs/sweeps.md)", field="sweep")
    # The hardware target opens with its noise section, so a section that cannot be built
    # (an unknown device or gate) is refused here, before the flow starts.
    noise = {"gates.hardware.backend": spec.gates.hardware.noise}
    opened = {field: open_engine(name, settings, transpiler_seed=spec.seeds.transpiler, field=field,
                                 noise=noise.get(field))
              for field, name in backends_of(spec, options, kind=kind).items()}
    inputs = load_inputs(spec, settings, allow_unpinned_data=options.allow_unpinned_data)
    for field, engine in opened.items():
        check_width(engine.name, inputs.workload.ansatz, engine.num_qubits, field=field)
    if kind == "sweep":
        point_source(spec, inputs.workload, settings.project_root)  # names, shapes, values
    # Last: opening the store creates it, and a refused input must leave nothing behind.
    StateStore(settings.state_store_url)
    return inputs
