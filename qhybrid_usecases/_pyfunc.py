"""The pyfunc model class of a promoted run (see :mod:`qhybrid_usecases._predict`).

Imported only where a model is saved (applying a promotion) or loaded (MLflow unpickles it by
reference to this module), since ``mlflow.pyfunc`` takes about a second to import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qhybrid.core import InvalidInputError, Settings, spec_from_mapping
from qhybrid_usecases._evaluate import PromotedExperiment
from qhybrid_usecases._predict import predict_values
from qhybrid_usecases._services import Services
from registry import EVIDENCE, quiet_pyfunc_import, read_manifest

with quiet_pyfunc_import():
    import pandas as pd  # type: ignore[import-untyped]
    from mlflow.pyfunc.model import PythonModel, PythonModelContext


class PromotedModel(PythonModel):
    """The pyfunc model of a promoted run; its evidence (manifest, input data) is an artifact.

    Holds no state when pickled: everything is read in :meth:`load_context`.
    """

    def load_context(self, context: PythonModelContext) -> None:
        """Read the manifest and spec the model carries."""
        self._evidence = Path(context.artifacts[EVIDENCE])
        manifest = read_manifest(self._evidence / "manifest.json")
        spec = spec_from_mapping(manifest.spec, source="model manifest.spec")
        self._model = PromotedExperiment(name=manifest.experiment, alias="pyfunc",
                                         version=manifest.version, manifest=manifest, spec=spec)
        self._services: Services | None = None

    def predict(self, context: PythonModelContext, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Values at each row's parameters; see the module docstring.

        Raises:
            InvalidInputError: A missing parameter column, an invalid instance or parameter set.
            BackendError: The backend failed.
        """
        params = params or {}
        names = list(self._model.manifest.parameter_names)
        missing = [n for n in names if n not in model_input.columns]
        if missing:
            raise InvalidInputError(f"missing parameter columns: {', '.join(missing)}",
                                    field="parameter_sets")
        rows = model_input[names].to_numpy(dtype=float).tolist()
        text = str(params.get("instance") or "")
        instance = None
        if text:
            try:
                instance = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"instance is not JSON: {exc}", field="instance") from exc
            if not isinstance(instance, dict):
                raise InvalidInputError("instance must be a JSON object", field="instance")
        if self._services is None:
            self._services = Services.open(Settings())  # this process's settings: an edge
        prediction = predict_values(self._services, self._model, rows,
                                    backend=str(params.get("backend") or "") or None,
                                    instance=instance, data_root=self._evidence)
        count = len(prediction.values)
        return pd.DataFrame({"value": list(prediction.values),
                             "source": [prediction.source] * count,
                             "backend": [prediction.backend] * count,
                             "downgrade": [prediction.downgrade or ""] * count})
