"""A promoted version is an MLflow pyfunc model: ``models:/<name>@champion`` loads and evaluates
the promoted experiment on new parameter sets or a new instance. Real promotion (Aer, fake IBM
device, MLflow on SQLite), then MLflow's own loader, in this process and in a fresh one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from qiskit.quantum_info import Statevector

from qhybrid.core import InvalidInputError, Settings, load_spec
from qhybrid.experiments import bind, build_workload, load_instance, parse_instance
from tests.registry.conftest import Promoted

pytestmark = [
    # MLflow 3 warns on importing mlflow.pyfunc about its own agent types' Any hints.
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
    # MLflow compares a frame's columns with a range when it reads an input example (pandas 3).
    pytest.mark.filterwarnings("ignore:Operation with range is deprecated"),
]

SPEC = "qaoa-maxcut-small"
CYCLE = {"kind": "graph", "schema_version": 1, "num_nodes": 4,
         "edges": [[0, 1, 1.0], [1, 2, 1.0], [2, 3, 1.0], [3, 0, 1.0]]}


def expected_cut(instance: object, spec_path: Path, parameters: list[float]) -> float:
    """The expected cut at ``parameters``, from exact statevector probabilities and the graph's
    edges: independent of the observable and of every executor."""
    spec = load_spec(spec_path)
    graph = parse_instance(instance, source="test", field="instance") \
        if isinstance(instance, dict) else load_instance(Path(str(instance)))
    workload = build_workload(spec.family, graph)
    probabilities = Statevector(bind(workload, workload.ansatz, np.array(parameters))
                                ).probabilities_dict()
    edges = instance["edges"] if isinstance(instance, dict) else json.loads(
        Path(str(instance)).read_text())["edges"]
    total = 0.0
    for bits, p in probabilities.items():
        side = bits[::-1]  # qiskit's bit strings put qubit 0 last
        total += p * sum(w for i, j, w in edges if side[int(i)] != side[int(j)])
    return total


@pytest.fixture
def champion(promoted: Callable[[str], Promoted], settings: Settings,
             monkeypatch: pytest.MonkeyPatch) -> Promoted:
    done = promoted(SPEC)
    assert done.decision.aliases == ("challenger", "champion")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.tracking_uri)
    return done


def test_the_champion_loads_and_predicts_with_its_signature(champion: Promoted, repo: Path,
                                                            settings: Settings) -> None:
    model = mlflow.pyfunc.load_model(f"models:/{SPEC}@champion")

    signature = model.metadata.signature
    names = [c.name for c in signature.inputs.inputs]
    assert names == ["gamma[0]", "beta[0]"]
    assert [c.name for c in signature.outputs.inputs] == ["value", "source", "backend",
                                                          "downgrade"]
    assert {p.name: p.default for p in signature.params.params} == {"backend": "aer",
                                                                    "instance": ""}
    manifest = json.loads((settings.manifests_path / f"{champion.mlflow_run_id}.json"
                           ).read_text())
    example = model.input_example
    assert list(example.columns) == names
    assert example.iloc[0].tolist() == manifest["parameters"]  # the promoted parameters

    spec_path = repo / "specs" / f"{SPEC}.yaml"
    other = [0.3, 0.9]
    frame = pd.DataFrame([manifest["parameters"], other], columns=names)
    out = model.predict(frame)
    assert list(out["source"]) == ["simulator"] * 2 and list(out["backend"]) == ["aer"] * 2
    data = repo / "data" / "maxcut_3reg_6.json"
    for value, row in zip(out["value"], (manifest["parameters"], other), strict=True):
        assert value == pytest.approx(expected_cut(data, spec_path, row), abs=1e-6)

    # A new problem instance: the promoted parameters on a 4-cycle.
    on_cycle = model.predict(example, params={"instance": json.dumps(CYCLE)})
    assert on_cycle["value"][0] == pytest.approx(
        expected_cut(CYCLE, spec_path, manifest["parameters"]), abs=1e-6)
    assert on_cycle["value"][0] != pytest.approx(out["value"][0])

    # On the spec's noisy fallback device: a simulator too, and noise lowers the expected cut.
    noisy = model.predict(example, params={"backend": "aer-noisy:fake_lagos"})
    assert (noisy["source"][0], noisy["backend"][0]) == ("simulator", "aer-noisy:fake_lagos")
    assert noisy["value"][0] < out["value"][0]

    version = MlflowClient(settings.tracking_uri).get_model_version_by_alias(SPEC, "champion")
    assert version.source.endswith(f"{champion.mlflow_run_id}/artifacts/model")


def test_bad_inputs_name_their_field(champion: Promoted) -> None:
    model = mlflow.pyfunc.load_model(f"models:/{SPEC}@champion")
    example = model.input_example
    with pytest.raises(InvalidInputError) as info:
        model.predict(example, params={"instance": "{not json"})
    assert info.value.field == "instance"
    with pytest.raises(MlflowException, match=r"beta\[0\]"):  # the signature guards columns
        model.predict(example[["gamma[0]"]])


def test_the_model_loads_in_a_fresh_process(champion: Promoted, settings: Settings,
                                            tmp_path: Path) -> None:
    """Pickled by reference to the installed package: a new interpreter loads it."""
    script = ("import mlflow, sys\n"
              f"m = mlflow.pyfunc.load_model('models:/{SPEC}@champion')\n"
              "sys.stdout.write(m.predict(m.input_example).to_json(orient='records'))\n")
    env = {**os.environ, "MLFLOW_TRACKING_URI": settings.tracking_uri,
           "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    [row] = json.loads(done.stdout)
    assert (row["source"], row["backend"]) == ("simulator", "aer") and row["value"] > 0
