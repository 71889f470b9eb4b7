"""The spec contract: validation names the field; round trips are lossless."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from qhybrid.core import (
    BackendNameError,
    ExperimentSpec,
    InvalidInputError,
    SpecError,
    load_spec,
    parse_backend_name,
    spec_from_mapping,
)

REPO = Path(__file__).resolve().parents[2]
BUNDLED = sorted((REPO / "specs").glob("*.yaml"))


def _base() -> dict:
    return yaml.safe_load((REPO / "specs" / "vqe-h2.yaml").read_text())


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_bundled_specs_validate_and_round_trip(path: Path) -> None:
    spec = load_spec(path)
    again = ExperimentSpec.model_validate_json(spec.model_dump_json())
    assert again == spec
    assert again.sha256() == spec.sha256()


def test_hash_changes_with_any_field() -> None:
    spec = spec_from_mapping(_base())
    other = spec_from_mapping({**_base(), "shots": spec.shots + 1})
    assert spec.sha256() != other.sha256()


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"shots": -5}, "shots"),
        ({"shots": 10**9}, "shots"),
        ({"family": {"kind": "grover"}}, "family"),
        ({"gates": {"statistical": {"threshold": 1, "tolerance": 1},
                    "baseline": {"solvers": ["exact-diagonalisation"]},
                    "hardware": {"backend": "quantinuum:h1"}}}, "gates.hardware.backend"),
        ({"dataset": {"path": "/etc/passwd"}}, "dataset.path"),
        ({"version": "one"}, "version"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_fields_are_named(patch: dict, field: str) -> None:
    with pytest.raises(SpecError) as info:
        spec_from_mapping({**_base(), **patch})
    assert info.value.field is not None and info.value.field.startswith(field)
    assert isinstance(info.value, InvalidInputError)


def test_baseline_must_fit_family() -> None:
    data = _base()
    data["gates"]["baseline"]["solvers"] = ["brute-force"]
    with pytest.raises(SpecError, match="do not apply to vqe"):
        spec_from_mapping(data)


def test_malformed_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="malformed YAML"):
        load_spec(bad)
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "absent.yaml")
    bad.write_text("- just\n- a list\n")
    with pytest.raises(SpecError, match="mapping"):
        load_spec(bad)


@hsettings(max_examples=60, deadline=None)
@given(shots=st.integers())
def test_shots_edges(shots: int) -> None:
    data = {**_base(), "shots": shots}
    if 1 <= shots <= 1_000_000:
        assert spec_from_mapping(data).shots == shots
    else:
        with pytest.raises(SpecError):
            spec_from_mapping(data)


@hsettings(max_examples=80, deadline=None)
@given(text=st.text(max_size=30))
def test_backend_names_parse_or_fail_cleanly(text: str) -> None:
    try:
        name = parse_backend_name(text)
    except BackendNameError as exc:
        assert exc.field == "backend"
    else:
        assert str(name) == text.strip()


def test_backend_grammar() -> None:
    assert parse_backend_name("aer").kind == "aer"
    assert parse_backend_name("ibm:fake_manila").is_fake
    assert parse_backend_name("ibm:ibm_torino").is_real_hardware
    with pytest.raises(BackendNameError):
        parse_backend_name("aer-noisy:ibm_torino")


def _fifo(tmp_path: Path) -> Path:
    import os

    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(("make", "message"), [
    (lambda tmp: tmp / "x.yaml", "does not exist"),
    (lambda tmp: tmp, "not a regular file"),
    (_fifo, "not a regular file"),
    (lambda tmp: Path("/dev/zero"), "not a regular file"),
    (lambda tmp: tmp / ("n" * 300 + ".yaml"), "longer than 255 bytes"),
    (lambda tmp: (tmp / "latin1.yaml", (tmp / "latin1.yaml").write_bytes(b"name: caf\xe9\n"))[0],
     "not valid UTF-8"),
    (lambda tmp: (tmp / "dup.yaml", (tmp / "dup.yaml").write_text("name: a\nname: b\n"))[0],
     "appears twice"),
    (lambda tmp: (tmp / "deep.yaml", (tmp / "deep.yaml").write_text("[" * 5000 + "]" * 5000))[0],
     "nested too deeply"),
    (lambda tmp: (tmp / "big.yaml", (tmp / "big.yaml").write_bytes(b"#" * (17 << 20)))[0],
     "at most"),
])
def test_hostile_spec_files_are_refused_naming_the_argument(tmp_path: Path, make, message: str,
                                                            ) -> None:
    with pytest.raises(SpecError, match=message) as info:
        load_spec(make(tmp_path))
    assert info.value.field == "SPEC"


@pytest.mark.parametrize("points", [
    {"kind": "grid", "grid": {"gamma[0]": {"start": 0, "stop": 1, "num": 3}}},
    {"kind": "random", "count": 10, "seed": 4},
    {"kind": "file", "path": "data/points.npy"},
], ids=lambda p: p["kind"])
def test_sweep_sections_round_trip_and_flatten_to_mlflow_keys(points: dict) -> None:
    spec = spec_from_mapping({**_base(), "sweep": {"points": points, "chunk_size": 100}})
    assert ExperimentSpec.model_validate_json(spec.model_dump_json()) == spec
    keys = spec.flat_params()
    # MLflow refuses brackets in keys: gamma[0] is logged as gamma.0.
    assert not any("[" in k or "]" in k for k in keys)
    assert keys["sweep.chunk_size"] == "100"
