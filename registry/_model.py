"""A promoted run packaged as an MLflow pyfunc model: a signature, an input example and its
evidence (the manifest and the pinned input data), logged under the run's ``model/`` artifacts.

The registry only packages the model: the class whose ``predict`` evaluates it belongs to the
application layer, which hands an instance in (the registry never imports that layer). The
instance is pickled by reference to its installed module, so a process that loads the model
needs qhybrid installed, as ``pip_requirements`` says.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlflow.exceptions import MlflowException

from qhybrid.core import RunManifest, TrackingError
from registry._provenance import package_versions
from registry._tracking import Tracker

if TYPE_CHECKING:
    from mlflow.models import ModelSignature
    from mlflow.pyfunc.model import PythonModel

MODEL_PATH = "model"
"""Where, under a promoted run's artifacts, its pyfunc model is; the registered version's source."""

EVIDENCE = "evidence"
"""The model's artifact folder: ``manifest.json`` and each input at its project-relative path."""

PredictParam = str | int | float


@contextmanager
def quiet_pyfunc_import() -> Iterator[None]:
    """Import or call ``mlflow.pyfunc`` (about a second to import; done only when a model is
    saved or loaded) without two warnings about MLflow's own code: the one MLflow 3 emits about
    its agent types' ``Any`` hints on import, and pandas 3's about MLflow comparing a frame's
    columns with a ``range`` when it stores an input example."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*Any type hint is inferred as AnyType",
                                category=UserWarning)
        warnings.filterwarnings("ignore", message=r"Operation with range is deprecated")
        yield


@dataclass(frozen=True)
class ModelInterface:
    """What ``predict`` takes and returns, for the signature the MLflow UI shows.

    Attributes:
        parameter_names: One input column per circuit parameter, in the family's order.
        example: One row: the promoted parameters.
        params: Each ``predict`` param and its default.
        outputs: Each output column and its MLflow type (``double``, ``string``, ...).
    """

    parameter_names: Sequence[str]
    example: Sequence[float]
    params: Mapping[str, PredictParam]
    outputs: Mapping[str, str]

    def signature(self) -> ModelSignature:
        """The MLflow signature: parameter columns in, ``outputs`` out, ``params`` as params.

        A circuit without parameters has no input columns, and MLflow refuses an empty input
        schema: its signature has no inputs (its input example is one row of no columns, and
        predict takes an empty frame).
        """
        with quiet_pyfunc_import():
            from mlflow.models import ModelSignature
            from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
        kinds = {str: "string", int: "long", float: "double"}
        return ModelSignature(
            inputs=Schema([ColSpec("double", name) for name in self.parameter_names])
            if self.parameter_names else None,
            outputs=Schema([ColSpec(kind, name) for name, kind in self.outputs.items()]),
            params=ParamSchema([ParamSpec(name, kinds[type(value)], value)
                                for name, value in self.params.items()]),
        )


def log_model(tracker: Tracker, run_id: str, python_model: PythonModel, manifest: RunManifest,
              inputs: Mapping[str, Path], interface: ModelInterface) -> str:
    """Save ``python_model`` with its evidence as a pyfunc model and log it under the run's
    ``model/`` artifacts.

    Args:
        tracker: The store of the run.
        run_id: The promoted run.
        python_model: The application layer's model; it reads ``artifacts["evidence"]``.
        manifest: The run's manifest, stored in the model as ``evidence/manifest.json``.
        inputs: Each input file by its project-relative path (the manifest's ``data`` keys).
        interface: The signature's columns and params, and the input example.

    Returns:
        The artifact path (``model``), for :meth:`Tracker.register_version`.

    Raises:
        TrackingError: The model cannot be saved or logged.
    """
    with quiet_pyfunc_import():
        import pandas as pd  # type: ignore[import-untyped]
        from mlflow.pyfunc import save_model
    with tempfile.TemporaryDirectory(prefix="qhybrid-model-") as tmp:
        evidence = Path(tmp) / EVIDENCE
        try:
            evidence.mkdir()
            (evidence / "manifest.json").write_text(manifest.model_dump_json(indent=1),
                                                    encoding="utf-8")
            for rel, source in inputs.items():
                target = evidence / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
            requirements = [f"{name}=={version}"
                            for name, version in sorted(package_versions().items())
                            if version != "not installed"]
            with quiet_pyfunc_import():
                save_model(
                    Path(tmp) / MODEL_PATH, python_model=python_model,
                    artifacts={EVIDENCE: str(evidence)}, signature=interface.signature(),
                    input_example=pd.DataFrame([list(interface.example)],
                                               columns=list(interface.parameter_names)),
                    # Written out rather than inferred: inference loads the model in a subprocess.
                    pip_requirements=requirements,
                    metadata={"qhybrid.experiment": manifest.experiment,
                              "qhybrid.version": manifest.version,
                              "qhybrid.mlflow_run_id": manifest.mlflow_run_id or ""},
                )
        except (MlflowException, OSError) as exc:
            raise TrackingError(f"cannot save the model of run {run_id}: {exc}") from exc
        tracker.log_artifacts(run_id, Path(tmp) / MODEL_PATH, MODEL_PATH)
    return MODEL_PATH
