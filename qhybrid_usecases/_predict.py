"""Evaluating a registered version as an MLflow pyfunc model (the model class itself is in
:mod:`qhybrid_usecases._pyfunc`, imported only where a model is saved or loaded).

``mlflow.pyfunc.load_model("models:/<name>@champion").predict(frame, params=...)`` evaluates
the promoted experiment (its family, parameters and backend, from the manifest the model
carries) on new inputs, through the path the job service's evaluations take
(:mod:`qhybrid_usecases._evaluate`: its workload, route and executor):

- ``frame``: one row per parameter set, one column per circuit parameter (the signature names
  them); no rows means the promoted parameters.
- ``params``: ``backend`` (default: the spec's ideal-gate backend) and ``instance`` (a problem
  instance as JSON; empty means the instance the version was promoted on, which the model
  carries with its DVC md5).

It returns one row per parameter set: ``value`` (the expectation of the family's observable),
``source`` (``simulator`` or ``hardware``), ``backend`` (where it ran) and ``downgrade`` (why
not on the backend asked for, empty if it was). The process that calls ``predict`` reads its
``QHYBRID_*`` settings there (state store, IBM token), as any qhybrid entry point does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qhybrid.core import RunManifest, spec_from_mapping
from qhybrid_control import policies_from
from qhybrid_usecases._evaluate import PromotedExperiment, _workload, circuit_points, route
from qhybrid_usecases._jobs import source_of
from qhybrid_usecases._services import Services
from registry import ModelInterface

OUTPUTS = {"value": "double", "source": "string", "backend": "string", "downgrade": "string"}
"""The columns ``predict`` returns, with their MLflow types."""

PREDICT_CLASS = "interactive"
"""The SLA class whose long-queue rule a ``predict`` call follows: it answers now."""


@dataclass(frozen=True)
class Prediction:
    """Values of the promoted experiment at some parameter sets.

    Attributes:
        values: The observable's expectation, one per parameter set.
        source: ``simulator`` or ``hardware``.
        backend: Where the values were computed.
        downgrade: Why that is not the backend asked for, if it is not.
    """

    values: tuple[float, ...]
    source: str
    backend: str
    downgrade: str | None


def interface(manifest: RunManifest) -> ModelInterface:
    """The pyfunc signature of a promoted run: its parameters in, :data:`OUTPUTS` out."""
    spec = spec_from_mapping(manifest.spec, source="manifest.spec")
    return ModelInterface(parameter_names=manifest.parameter_names, example=manifest.parameters,
                          params={"backend": spec.gates.ideal.backend, "instance": ""},
                          outputs=OUTPUTS)


def predict_values(services: Services, model: PromotedExperiment,
                   parameter_sets: Sequence[Sequence[float]], *, backend: str | None = None,
                   instance: dict[str, object] | None = None,
                   data_root: Path | None = None) -> Prediction:
    """Evaluate ``model`` at ``parameter_sets`` (none: its promoted parameters), on ``instance``
    or the instance it was promoted on, as the job service evaluates it.

    Args:
        services: Where the executor submits (state store, execution log).
        model: The promoted experiment.
        parameter_sets: One row per parameter set, in the family's parameter order.
        backend: Where to run; default the spec's ideal-gate backend.
        instance: A new problem instance (JSON document), else the promoted one.
        data_root: The folder holding the promoted instance at its recorded path (a model's
            evidence); default the project root.

    Raises:
        InvalidInputError: A parameter set of the wrong length, or an invalid instance.
        DataError: The promoted instance is not the data the version was promoted on.
        BackendNameError: The backend names no device.
        BackendError: The backend failed.
    """
    scoped = services if data_root is None else dataclasses.replace(
        services, settings=services.settings.model_copy(update={"project_root": data_root}))
    workload = _workload(scoped, model, instance)
    requested = backend or model.spec.gates.ideal.backend
    seeds = model.spec.seeds
    policy = policies_from(services.settings.sla_policies)[PREDICT_CLASS]
    routed = route(services, requested, policy, transpiler_seed=seeds.transpiler)
    # A predict call answers now: a class that would hand the work to a slower one waits.
    used = requested if routed.hand_over_to is not None else routed.backend
    downgrade = None if routed.hand_over_to is not None else routed.downgrade
    rows = np.asarray(parameter_sets if len(parameter_sets) else [model.manifest.parameters],
                      dtype=float)
    points = circuit_points(workload, rows)
    executor = services.executor(used, transpiler_seed=seeds.transpiler, flow_run_id=None)
    values = executor.estimate(workload.ansatz, workload.observable, points, seed=seeds.simulator)
    return Prediction(values=tuple(float(v) for v in values), source=source_of(used),
                      backend=used, downgrade=downgrade)
