"""The CLI's quick refusals (qhybrid_entrypoints._early) against the checks they stand in for:
the same verdicts and messages, so a quick refusal never says something the full preflight
would not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import qhybrid_usecases
from backends import fake_device
from qhybrid.core import BackendNameError, DataError, RunOptions, Settings, load_spec
from qhybrid_entrypoints import _early
from registry import pin_inputs

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_fake_devices_are_the_ones_the_backends_open() -> None:
    from qiskit_ibm_runtime import fake_provider

    device_class = fake_provider.fake_backend.FakeBackendV2
    classes = {name for name in dir(fake_provider)
               if re.fullmatch(r"Fake[A-Z][a-z0-9]*V2", name)
               and issubclass(getattr(fake_provider, name), device_class)}
    from_classes = {"fake_" + name[4:-2].lower() for name in classes}
    assert _early.fake_devices() == from_classes
    for device in sorted(_early.fake_devices())[:5]:
        fake_device(device)  # opens
    with pytest.raises(BackendNameError):
        fake_device("fake_torino")  # a file ships, but no FakeTorinoV2: refused by both
    assert "fake_torino" not in _early.fake_devices()


@pytest.mark.parametrize("spec", ["vqe-h2.yaml", "qaoa-maxcut.yaml"])
@pytest.mark.parametrize("kind", ["run", "promotion"])
@pytest.mark.parametrize("backend", [None, "aer-noisy:fake_lima"])
def test_the_backends_checked_are_the_ones_a_run_uses(spec: str, kind: str,
                                                     backend: str | None) -> None:
    loaded = load_spec(REPO / "specs" / spec)
    options = RunOptions(backend=backend)
    assert _early.backends_of(loaded, options, kind=kind) == qhybrid_usecases.backends_of(
        loaded, options, kind=kind)


def _refusal(check, *args, **kwargs) -> DataError | None:
    try:
        check(*args, **kwargs)
    except DataError as exc:
        return exc
    return None


@pytest.mark.parametrize("case", ["intact", "tampered", "missing", "no lock", "not the root"])
def test_the_quick_data_check_agrees_with_the_dvc_pin(project_copy: Path, tmp_path: Path,
                                                     case: str) -> None:
    spec = load_spec(REPO / "specs" / "vqe-h2.yaml")
    root = tmp_path / "elsewhere" if case == "not the root" else project_copy
    root.mkdir(exist_ok=True)
    data = project_copy / spec.dataset.path
    if case == "tampered":
        data.write_text(data.read_text().replace("0.39", "0.38"))
    if case == "missing":
        data.unlink()
    if case == "no lock":
        (project_copy / "dvc.lock").unlink()
    quick = _refusal(_early.check_data, spec, Settings(project_root=root), allow_unpinned=False)
    full = _refusal(pin_inputs, [spec.dataset.path], root)
    if case == "intact":
        assert quick is None and full is None
    else:
        assert quick is not None and full is not None
        assert (quick.field, str(quick)) == (full.field, str(full))
