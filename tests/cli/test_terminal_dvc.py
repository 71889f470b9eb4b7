"""The DVC side as a user works it, in a scratch copy of the project with a local remote:
params.yaml drives the generators, `dvc repro` gives the bytes dvc.lock pins, and the advice
a refused run prints restores the data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qhybrid.core import DataError
from registry import file_md5, pin_inputs

REPO = Path(__file__).resolve().parents[2]
DATA = "data/h2_sto3g_0735.json"


def _dvc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    # The stages run `python -m qhybrid_entrypoints.cli`: this interpreter, and the package
    # itself rather than the copy of its generator that the pipeline depends on.
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(REPO),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], cwd=root, env=env,
                          text=True, capture_output=True, timeout=300, check=False,
                          stdin=subprocess.DEVNULL)
    if check:
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


@pytest.fixture
def dvc_project(tmp_path: Path) -> Path:
    """The project's pipeline (dvc.yaml, params.yaml, dvc.lock and the generators it depends
    on), committed in a fresh git + DVC repository with a local remote; no data yet."""
    root = tmp_path / "project"
    (root / "qhybrid" / "experiments").mkdir(parents=True)
    for name in ("dvc.yaml", "params.yaml", "dvc.lock"):
        shutil.copy(REPO / name, root / name)
    for generator in ("_datagen.py", "_circuit_data.py"):
        shutil.copy(REPO / "qhybrid" / "experiments" / generator,
                    root / "qhybrid" / "experiments" / generator)
    git = ["git", "-c", "user.name=qhybrid", "-c", "user.email=qhybrid@localhost"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True, timeout=60)
    _dvc(root, "init", "-q")
    _dvc(root, "remote", "add", "-d", "local", str(tmp_path / "remote"))
    subprocess.run([*git, "add", "-A"], cwd=root, check=True, timeout=60)
    subprocess.run([*git, "commit", "-q", "-m", "pipeline"], cwd=root, check=True, timeout=60)
    return root


def test_params_yaml_drives_the_generators_and_repro_gives_the_pinned_bytes(
        dvc_project: Path) -> None:
    lock_before = (dvc_project / "dvc.lock").read_text()
    locked = yaml.safe_load(lock_before)["stages"]
    assert locked["maxcut-3reg-10"]["params"]["params.yaml"]["maxcut_3reg_10"] == {
        "nodes": 10, "degree": 3, "seed": 7}
    _dvc(dvc_project, "repro")
    assert (dvc_project / "dvc.lock").read_text() == lock_before  # nothing to re-pin
    for stage in locked.values():
        [out] = stage["outs"]
        assert file_md5(dvc_project / out["path"]) == out["md5"], out["path"]
    assert "up to date" in _dvc(dvc_project, "status").stdout
    # A generator parameter is a tracked parameter: DVC sees its change and what it touches.
    params = dvc_project / "params.yaml"
    params.write_text(params.read_text().replace("seed: 7", "seed: 8"))
    diff = json.loads(_dvc(dvc_project, "params", "diff", "--json").stdout)
    seed = diff["params.yaml"]["maxcut_3reg_10.seed"]
    assert (seed["old"], seed["new"]) == (7, 8)
    status = json.loads(_dvc(dvc_project, "status", "--json").stdout)
    assert set(status) == {"maxcut-3reg-10"}


def test_the_advice_of_a_refused_pin_restores_the_data(dvc_project: Path) -> None:
    _dvc(dvc_project, "repro")
    _dvc(dvc_project, "push", "-q")
    target = dvc_project / DATA
    target.write_text(target.read_text().replace("0.39", "0.38"))
    with pytest.raises(DataError) as refused:
        pin_inputs([DATA], dvc_project)
    assert refused.value.field == "dataset.path"
    advice = str(refused.value).split("restore it with", 1)[1]
    commands = advice.split("`")[1::2]  # each command the message quotes
    assert commands == [f"dvc checkout --force {DATA}", "dvc repro h2-sto3g-0735"], advice
    for command in commands:
        target.write_text(target.read_text().replace("0.39", "0.38"))
        _dvc(dvc_project, *command.split()[1:])
        assert pin_inputs([DATA], dvc_project)[DATA].matches, command
    # And from the remote, when the local cache is gone: what the missing-data message says.
    shutil.rmtree(dvc_project / ".dvc" / "cache")
    target.unlink()
    with pytest.raises(DataError, match="run `dvc repro` or `dvc pull` first"):
        pin_inputs([DATA], dvc_project)
    _dvc(dvc_project, "pull", "-q")
    assert pin_inputs([DATA], dvc_project)[DATA].matches


def test_a_folder_that_is_not_the_project_root_is_named_as_such(tmp_path: Path) -> None:
    with pytest.raises(DataError) as refused:
        pin_inputs([DATA], tmp_path)
    assert refused.value.field == "QHYBRID_PROJECT_ROOT"
    assert "run qhybrid from the project root" in str(refused.value)
