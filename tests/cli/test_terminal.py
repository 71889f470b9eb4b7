"""The command line as a person at a terminal meets it: version, completion, help, quick
refusals, where to run it from, and readable ``show`` and ``experiments`` output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from qhybrid_entrypoints import _console, _flow_command
from qhybrid_entrypoints.cli import app
from tests.cli.test_cli import _spec

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("qiskit", "qiskit_aer", "qiskit_ibm_runtime", "prefect", "mlflow", "dvc")
COMMANDS = (["run"], ["promote"], ["experiments"], ["show"], ["replay"], ["leases"], ["serve"],
            ["data", "maxcut"], ["data", "h2"], ["data", "ghz"], [])


def test_version_is_the_installed_distributions() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"qhybrid {version('qhybrid')}"


def _complete(line: str, cwd: Path) -> list[str]:
    """What bash completion offers for the last word of ``line``, as the installed
    ``qhybrid`` script answers it (what `qhybrid --install-completion` wires into the shell)."""
    words = line.split()
    env = {**os.environ, "_QHYBRID_COMPLETE": "complete_bash", "COMP_WORDS": line,
           "COMP_CWORD": str(len(words) - 1)}
    done = subprocess.run([str(Path(sys.executable).parent / "qhybrid")], env=env, cwd=cwd,
                          text=True, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_shell_completion_completes_commands_and_options(tmp_path: Path) -> None:
    assert "--install-completion" in CliRunner().invoke(app, ["--help"]).stdout
    assert _complete("qhybrid pro", tmp_path) == ["promote"]
    assert _complete("qhybrid exp", tmp_path) == ["experiments"]
    assert "--allow-unpinned-data" in _complete("qhybrid run --al", tmp_path)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "qhybrid")
def test_help_shows_flags_as_flags(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "--help" in result.stdout
    assert "<bool>" not in result.stdout
    if command in (["run"], ["promote"]):
        assert re.search(r"--json\s+Print one JSON document", result.stdout), result.stdout
        assert re.search(r"--verbose\s+-v\s+Print Prefect", result.stdout), result.stdout


def _loaded(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, list[str]]:
    """Run the command in a fresh interpreter; its exit code, its stdout and the heavy modules
    loaded by the time it exited."""
    probe = (
        "import json, sys\n"
        "from qhybrid_entrypoints.cli import app\n"
        "try:\n"
        f"    app({args!r})\n"
        "except SystemExit as stop:\n"
        "    code = stop.code\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "print(json.dumps({'code': code, 'heavy': heavy}), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=env, cwd=cwd, text=True,
                          capture_output=True, timeout=120, check=False)
    verdict = json.loads(done.stderr.strip().splitlines()[-1])
    return verdict["code"], done.stdout, verdict["heavy"]


def _refusal(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, dict, list[str]]:
    """Run the command in a fresh interpreter; its exit code, its JSON error and the heavy
    modules loaded by the time it exited."""
    code, stdout, heavy = _loaded(args, env, cwd)
    return code, json.loads(stdout)["error"], heavy


@pytest.mark.parametrize("args", [
    ["--help"], ["sweep", "--help"], ["promote", "--help"],
    ["sweep", "specs/qaoa-sweep.yaml", "--runner", "spark"],
    ["sweep", "specs/qaoa-sweep.yaml", "--workers", "0"],
    ["run", "specs/vqe-h2.yaml", "--shots"],
])
def test_help_and_argument_errors_load_nothing_heavy(qhybrid_env: dict[str, str],
                                                     args: list[str]) -> None:
    code, stdout, heavy = _loaded(args, {**os.environ, **qhybrid_env}, REPO)
    assert code == (0 if "--help" in args else 2), stdout
    assert heavy == [], f"{args}: answered only after importing {heavy}"


@pytest.mark.parametrize(("sweep", "field"), [
    ({"points": {"kind": "random", "count": 0}}, "sweep.points.count"),
    ({"points": {"kind": "lattice"}}, "sweep.points"),
    ({"points": {"kind": "random", "count": 5}, "chunk_size": 0}, "sweep.chunk_size"),
])
def test_a_malformed_sweep_section_is_refused_before_anything_heavy_loads(
        qhybrid_env: dict[str, str], tmp_path: Path, sweep: dict[str, object],
        field: str) -> None:
    # Names of parameters are the family's: checking them builds the circuit (Qiskit), as
    # `qhybrid run` checks its circuit's width.
    data = yaml.safe_load((REPO / "specs" / "qaoa-sweep.yaml").read_text())
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**data, "sweep": sweep}, allow_unicode=True))
    code, error, heavy = _refusal(["sweep", str(path), "--json"],
                                  {**os.environ, **qhybrid_env}, REPO)
    assert code == 2 and error["field"] == field, error
    assert heavy == []


@pytest.mark.parametrize(("case", "field"), [
    ("misspelt --backend", "--backend"),
    ("unknown fake device in --backend", "--backend"),
    ("unknown fake device in the spec", "gates.hardware.backend"),
    ("unknown fallback device", "gates.hardware.fallback.0"),
    ("real device without a token", "--backend"),
    ("missing dataset", "dataset.path"),
    ("tampered dataset", "dataset.path"),
    ("outside the project root", "QHYBRID_PROJECT_ROOT"),
])
def test_bad_input_is_refused_before_anything_heavy_loads(
        qhybrid_env: dict[str, str], project_copy: Path, tmp_path: Path, case: str,
        field: str) -> None:
    env = {**os.environ, **qhybrid_env}
    cwd, vqe = REPO, str(REPO / "specs" / "vqe-h2.yaml")
    args = {
        "misspelt --backend": ["run", vqe, "--backend", "aer-nosy:fake_manila"],
        "unknown fake device in --backend": ["run", vqe, "--backend", "aer-noisy:fake_atlantis"],
        "unknown fake device in the spec": [
            "promote", str(_spec(tmp_path, gates__hardware__backend="ibm:fake_atlantis"))],
        "unknown fallback device": [
            "promote", str(_spec(tmp_path, gates__hardware__fallback=["ibm:fake_nowhere"]))],
        "real device without a token": ["run", vqe, "--backend", "ibm:ibm_torino"],
        "missing dataset": ["run", str(_spec(tmp_path, dataset__path="data/absent.json"))],
        "tampered dataset": ["run", vqe],
        "outside the project root": ["run", vqe],
    }[case]
    if case == "tampered dataset":
        env["QHYBRID_PROJECT_ROOT"] = str(project_copy)
        data = project_copy / "data" / "h2_sto3g_0735.json"
        data.write_text(data.read_text().replace("0.39", "0.38"))
    if case == "outside the project root":
        env.pop("QHYBRID_PROJECT_ROOT")
        cwd = tmp_path
    code, error, heavy = _refusal([*args, "--json"], env, cwd)
    assert code == 2, error
    assert error["field"] == field, error
    assert heavy == [], f"{case}: refused only after importing {heavy}"
    if case == "outside the project root":
        assert "run qhybrid from the project root" in error["message"]
        assert "QHYBRID_PROJECT_ROOT" in error["message"]
        assert "dvc.lock is missing" not in error["message"]
    if case == "tampered dataset":
        assert "dvc checkout --force data/h2_sto3g_0735.json" in error["message"]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "state.db").exists()


@pytest.fixture
def registered(settings) -> dict[str, str]:
    """A promoted version with its gate runs, recorded through the registry as a promotion
    records them."""
    from registry import Tracker

    tracker = Tracker.for_settings(settings)
    run = tracker.start_run("promotion:vqe-h2@1.0.0", tags={
        "qhybrid.decision": "promote", "qhybrid.aliases": "challenger,champion",
        "qhybrid.reasons": "every gate passed | no champion yet"})
    gates = {"ideal": ("aer", {"energy_error": 2.139493e-11, "seconds": 3.8273}),
             "hardware": ("ibm:fake_manila", {"energy_error": 0.058156239640152485,
                                              "total_variation_distance": 0.06375,
                                              "seconds": 0.81})}
    for gate, (backend, metrics) in gates.items():
        child = tracker.start_run(f"gate:{gate}", tags={
            "qhybrid.gate": gate, "qhybrid.verdict": "pass", "qhybrid.backend": backend},
            parent_run_id=run)
        tracker.log_metrics(child, metrics)
        tracker.end_run(child)
    tracker.log_metrics(run, {"promotion.score": 0.058156239640152485})
    tracker.end_run(run)
    number = tracker.register_version("vqe-h2", run, "experiment", {
        "qhybrid.score": "0.058156239640152485", "qhybrid.version": "1.0.0"})
    for alias in ("champion", "challenger"):
        tracker.set_alias("vqe-h2", alias, number)
    return {"run_id": run, "version": number}


def test_experiments_prints_whole_run_ids_rounded_scores_and_plain_aliases(
        registered: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for width in (120, 80):  # 80: a narrow terminal; nothing that matters is cropped
        monkeypatch.setattr(_console.out, "width", width)
        result = CliRunner().invoke(app, ["experiments"])
        assert result.exit_code == 0, result.output
        assert registered["run_id"] in result.stdout
        assert "0.05816" in result.stdout and "0.0581562396" not in result.stdout
        assert "…" not in result.stdout and "[" not in result.stdout
        if width == 120:
            assert "challenger, champion" in result.stdout


def test_show_prints_each_gates_verdict_backend_and_rounded_metrics(
        registered: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_console.out, "width", 160)
    result = CliRunner().invoke(app, ["show", "vqe-h2@champion"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert f"vqe-h2 version {registered['version']} (aliases: challenger, champion)" in text
    assert "decision: promote -> challenger, champion (every gate passed; no champion yet)" in text
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") > 4}
    assert set(rows) == {"ideal", "hardware"}
    assert "ibm:fake_manila" in rows["hardware"] and "pass" in rows["hardware"]
    assert "energy_error=0.05816" in rows["hardware"]
    assert "total_variation_distance=0.06375" in rows["hardware"]
    assert "energy_error=2.139e-11" in rows["ideal"] and "3.8" in rows["ideal"]
    assert "['" not in text and "0.058156239" not in text



@pytest.mark.slow
@pytest.mark.parametrize("verbose", [False, True])
def test_prefect_info_lines_stay_off_the_terminal_unless_verbose(
        qhybrid_env: dict[str, str], tmp_path: Path, verbose: bool) -> None:
    env = {**os.environ, **qhybrid_env, "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "MLFLOW_DISABLE_TELEMETRY": "true",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run([sys.executable, "-m", "qhybrid_entrypoints.cli", "run",
                           "specs/vqe-h2.yaml", "--json", *(["-v"] if verbose else [])],
                          env=env, cwd=REPO, text=True, capture_output=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["mlflow_run_id"]
    task_lines = [line for line in done.stderr.splitlines() if "| INFO    | Task run" in line]
    if verbose:
        assert any("Finished in state Completed" in line for line in task_lines), done.stderr
    else:
        assert task_lines == [], task_lines


def test_the_prefect_hint_names_a_running_servers_own_page(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: "http://10.0.0.7:4200/api"}):
        assert _flow_command.prefect_ui_hint("f1") == "http://10.0.0.7:4200/runs/flow-run/f1"
    with temporary_settings(updates={PREFECT_HOME: tmp_path}, set_defaults={PREFECT_API_URL: None},
                            restore_defaults={PREFECT_API_URL}):
        hint = _flow_command.prefect_ui_hint("f1")  # the command's own throwaway server, now gone
    assert hint.startswith(f"PREFECT_HOME={tmp_path} prefect server start")
    assert hint.endswith("http://127.0.0.1:4200/runs/flow-run/f1")


def _commands() -> dict[str, object]:
    """Every command ``qhybrid --help`` lists, by its full name (``data maxcut``)."""
    from typer.main import get_command

    found: dict[str, object] = {}
    for name, command in get_command(app).commands.items():
        if hasattr(command, "commands"):  # a group: data
            found |= {f"{name} {sub}": c for sub, c in command.commands.items()}
        else:
            found[name] = command
    return found


def test_every_command_has_its_section_in_the_cli_docs() -> None:
    docs = (REPO / "docs" / "cli.md").read_text()
    sections = re.findall(r"^## `qhybrid ([a-z0-9-]+(?: [a-z0-9-]+)?)", docs, flags=re.MULTILINE)
    commands = _commands()
    assert sorted(set(commands) - set(sections)) == [], "commands without a section"
    # the line that lists the commands with --json names exactly those that have it
    listed = re.search(r"^- `--json` \(on ([^)]*)\)", docs, flags=re.MULTILINE)
    assert listed, "no --json line in docs/cli.md"
    with_json = {name for name, command in commands.items()
                 if any("--json" in p.opts for p in getattr(command, "params", ()))}
    assert set(re.findall(r"`([a-z ]+)`", listed.group(1))) == with_json
