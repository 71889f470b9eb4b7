"""Generated bad input: every spec, dataset, manifest and setting either works or is refused as
invalid input naming a field, never with a traceback, and a refused input writes nothing.

The cases are mutations of real documents (the bundled specs, a real manifest, the pinned
data), drawn by hypothesis with a fixed seed: leaves replaced by hostile values (NaN, infinity,
huge or negative numbers, wrong types, deep nesting), keys dropped, unknown keys added.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import qhybrid_usecases as usecases
from qhybrid.core import (
    InvalidInputError,
    QhybridError,
    RunOptions,
    Settings,
    load_settings,
    load_spec,
)
from qhybrid.experiments import load_instance
from qhybrid_entrypoints.cli import app
from registry import read_manifest

REPO = Path(__file__).resolve().parents[1]
SPECS = [yaml.safe_load(p.read_text()) for p in sorted((REPO / "specs").glob("*.yaml"))]
DATASETS = [json.loads(p.read_text()) for p in sorted((REPO / "data").glob("*.json"))]

HOSTILE = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 0, -1, 10**12, 2**63, 1e308, -1e-308,
                     "", " ", "nan", "aer:", "ibm:fake_provider_for_backend",
                     "aer-noisy:fake_provider_for_backend", "../../etc/passwd", "x" * 300,
                     None, True, [], {}, [[[[]]]], {"a": {"b": {"c": {}}}}]),
    st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value in a nested document."""
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


def _leaves(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [x for value in node.values() for x in _leaves(value)]
    if isinstance(node, list | tuple):
        return [x for value in node for x in _leaves(value)]
    return [node]


@st.composite
def mutated(draw: st.DrawFn, documents: list[Any]) -> Any:
    """A real document with one to three hostile mutations."""
    doc = copy.deepcopy(draw(st.sampled_from(documents)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "drop", "add", "nest"]))
        if action == "replace":  # a copy: the strategy's own lists and dicts stay untouched
            parent[path[-1]] = copy.deepcopy(draw(HOSTILE))
        elif action == "drop" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = copy.deepcopy(draw(HOSTILE))
        elif action == "nest":  # last: the walk above would not follow it down
            value: Any = 1
            for _ in range(draw(st.integers(50, 3000))):
                value = [value]
            parent[path[-1]] = value
            break
    return doc


def _refused_properly(exc: BaseException) -> None:
    assert isinstance(exc, InvalidInputError), f"{type(exc).__name__}: {exc}"
    assert exc.field, f"no field named: {exc}"


def _write_yaml(path: Path, doc: Any) -> bool:
    try:
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    except (RecursionError, yaml.YAMLError):
        return False  # the document itself cannot be written as YAML
    return True


@seed(20261130)
@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=mutated(SPECS))
def test_generated_specs_work_or_are_refused_naming_a_field(doc: Any, tmp_path_factory) -> None:
    path = tmp_path_factory.mktemp("spec") / "spec.yaml"
    if not _write_yaml(path, doc):
        return
    try:
        spec = load_spec(path)
        usecases.preflight(spec, Settings(), RunOptions(), kind="promotion")
    except QhybridError as exc:
        _refused_properly(exc)
    else:  # what is accepted is sane: every number finite
        numbers = [v for v in _leaves(spec.model_dump()) if isinstance(v, float)]
        assert all(math.isfinite(v) for v in numbers), numbers


@seed(20261130)
@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=mutated(DATASETS))
def test_generated_datasets_load_or_are_refused(doc: Any, tmp_path_factory) -> None:
    path = tmp_path_factory.mktemp("data") / "instance.json"
    try:
        path.write_text(json.dumps(doc))
    except (RecursionError, ValueError):
        return
    try:
        instance = load_instance(path)
    except QhybridError as exc:
        _refused_properly(exc)
    else:
        assert all(math.isfinite(w) for *_ij, w in getattr(instance, "edges", ()))


@pytest.fixture(scope="module")
def manifest_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real manifest, recorded through the use cases without Prefect."""
    from _pytest.monkeypatch import MonkeyPatch

    from qhybrid.core import load_spec as spec_at
    from tests.conftest import record_env

    patch = MonkeyPatch()
    for key, value in record_env(tmp_path_factory.mktemp("records")).items():
        patch.setenv(key, value)
    try:
        services = usecases.Services.open(Settings())
        run = usecases.open_run(spec_at(REPO / "specs" / "vqe-h2.yaml"), RunOptions(), services,
                                kind="run", flow_run_id=None)
        outcome = usecases.run_on_backend(run, services)
        recorded = usecases.record_evidence(run, services, outcome.trial, [outcome])
        usecases.finish_run(run, services, recorded, outcome.trial, [outcome])
        return json.loads(Path(recorded.manifest).read_text())
    finally:
        patch.undo()


@seed(20261130)
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_generated_manifests_replay_or_are_refused(data: st.DataObject, manifest_doc,
                                                   tmp_path_factory) -> None:
    doc = data.draw(mutated([manifest_doc]))
    path = tmp_path_factory.mktemp("manifest") / "m.json"
    try:
        path.write_text(json.dumps(doc))
    except (RecursionError, ValueError):
        return
    try:
        read_manifest(path)
        usecases.verify_replay(usecases.replay(path, Settings()))
    except QhybridError as exc:
        if type(exc).__name__ == "ReplayMismatchError":
            return  # a valid manifest whose records were changed: exit 7, as it should
        _refused_properly(exc)


@seed(20261130)
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(sorted(Settings.model_fields)).map(lambda n: f"QHYBRID_{n.upper()}")
       | st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_", min_size=1, max_size=20).map(
           lambda n: f"QHYBRID_{n}"),
       value=st.one_of(st.text(max_size=30), st.sampled_from(["nan", "inf", "-1", "1e309", ""])))
def test_generated_settings_load_or_are_refused_naming_the_variable(name: str, value: str) -> None:
    environ = {"QHYBRID_PROJECT_ROOT": str(REPO), name: value}
    try:
        load_settings(environ)
    except QhybridError as exc:
        _refused_properly(exc)
        assert exc.field and exc.field.startswith("QHYBRID_")


@pytest.mark.parametrize("index", range(12))
def test_a_sample_through_the_real_cli_exits_2_writes_nothing(index: int, tmp_path: Path,
                                                              qhybrid_env) -> None:
    """Hostile specs through the command line: exit 2, one JSON error naming a field, and no
    MLflow store, promotion log or manifest written."""
    hostile: list[tuple[str, Any]] = [
        ("shots", math.nan), ("parameters", [math.nan, 1.0]),
        ("gates.statistical.threshold", math.inf), ("gates.statistical.tolerance", -1),
        ("gates.hardware.backend", "ibm:fake_provider_for_backend"),
        ("gates.hardware.backend", "aer-noisy:fake_provider_for_backend"),
        ("dataset.path", "x" * 300 + ".json"), ("seeds.simulator", 2**40), ("family.reps", 0),
        ("gates.hardware.max_degradation", math.nan), ("name", ""), ("optimiser.maxiter", 10**9),
    ]
    dotted, value = hostile[index]
    doc = copy.deepcopy(SPECS[index % len(SPECS)])
    node = doc
    *head, last = dotted.split(".")
    for key in head:
        node = node.setdefault(key, {})
    node[last] = value
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(app, ["promote", str(spec), "--json"])
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)["error"]
    assert error["field"] and error["field"].split(".")[0] in (dotted.split(".")[0], "SPEC")
    for written in ("mlflow.db", "promotion-log.jsonl", "manifests", "state.db"):
        assert not (tmp_path / written).exists(), written


@pytest.mark.parametrize(("args", "named"), [
    (["circulant", "--offsets", "1,9"], "--offsets"),
    (["circulant", "--offsets", "1,x"], "--offsets"),
    (["qaoa-circuit", "--graph", str(Path(__file__).parents[1] / "data" / "h2_sto3g_0735.json")],
     "--graph"),
])
def test_bad_data_generator_options_exit_2_naming_them_and_write_nothing(
        args: list[str], named: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["data", *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert f"{named}:" in result.stderr
    assert not out.exists()
