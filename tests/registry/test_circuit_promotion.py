"""The bundled GHZ experiment (``kind: circuit``, no parameters) through every gate, to a
registered pyfunc model without input columns that predicts the objective."""

from __future__ import annotations

from collections.abc import Callable

import mlflow
import numpy as np
import pandas as pd
import pytest

from qhybrid.core import Settings
from tests.registry.conftest import Promoted

pytestmark = [
    # MLflow 3 warns on importing mlflow.pyfunc about its own agent types' Any hints.
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
]


@pytest.fixture
def ghz_mean_zz() -> float:
    """<(Z0Z1 + Z1Z2 + Z0Z2) / 3> on (|000> + |111>)/sqrt(2), from the state vector."""
    state = np.zeros(8)
    state[[0, 7]] = 1 / np.sqrt(2)
    index = np.arange(8)
    bit = [(index >> q) & 1 for q in range(3)]
    parities = [1 - 2 * (bit[i] ^ bit[j]) for i, j in ((0, 1), (1, 2), (0, 2))]
    return float(np.mean([state @ (p * state) for p in parities]))


def test_the_ghz_circuit_passes_every_gate_and_predicts(
        promoted: Callable[[str], Promoted], settings: Settings,
        monkeypatch: pytest.MonkeyPatch, ghz_mean_zz: float) -> None:
    done = promoted("ghz")
    assert done.decision.promote, done.decision.reasons
    assert done.version == "1"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.tracking_uri)
    model = mlflow.pyfunc.load_model("models:/ghz-3@champion")
    assert model.metadata.signature.inputs is None  # no parameters, no input columns
    frame = model.predict(pd.DataFrame(), params={"backend": "aer"})
    assert list(frame["value"]) == pytest.approx([ghz_mean_zz], abs=1e-9)
    assert ghz_mean_zz == pytest.approx(1.0)
