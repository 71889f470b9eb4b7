"""The monitoring files under ops/: promtool checks the alert rules, runs their unit tests and
evaluates every dashboard query; and every metric they name is one that the service's
``/metrics`` really exposes (rendered from ``ServiceMetrics`` on a temporary store)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import qhybrid_usecases as usecases
from backends import QpuBudget
from qhybrid.core import Settings
from qhybrid_control import DEFAULT_POLICIES
from qhybrid_entrypoints._metrics import ServiceMetrics

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "ops" / "prometheus"
RULES = PROMETHEUS / "qhybrid-alerts.yml"
RULE_TESTS = PROMETHEUS / "qhybrid-alerts.test.yml"
CONFIG = PROMETHEUS / "prometheus.yml"
DASHBOARD = REPO / "ops" / "grafana" / "qhybrid-dashboard.json"
RUNBOOKS = REPO / "docs" / "operations.md"

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (Debian/Ubuntu: `apt-get install prometheus`; or the "
    "promtool binary from a prometheus.io release): the rules and the dashboard's queries "
    "are not checked")

# Grafana's variables, as a query would see them once Grafana has expanded them.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h",
                     "$job": "qhybrid", "$sla": ".*"}
# Sample names each exposition type adds to its family's name (prometheus_client's parser
# names a counter family without its _total).
SERIES_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum",
                   "_count"), "summary": ("", "_sum", "_count"), "info": ("_info",),
                   "stateset": ("",), "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
                   "unknown": ("",)}
_METRIC = re.compile(r"(?<![\w:])qhybrid_[A-Za-z0-9_:]*")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')


def _promtool(*args: object, cwd: Path | None = None) -> str:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(map(str, args))} failed:\n{output}"
    return output


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def _dashboard_queries() -> list[tuple[str, str]]:
    """``(record name, expanded PromQL)`` of every panel target."""
    out = []
    for panel in _panels(_dashboard()["panels"]):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            out.append((f"dashboard:panel_{panel['id']}_{target['refId']}", expr))
    return out


def _names_in(promql: str) -> set[str]:
    """Metric names in a PromQL expression (quoted label values left out)."""
    return set(_METRIC.findall(_QUOTED.sub('""', promql)))


# --- promtool -------------------------------------------------------------------------------


@needs_promtool
def test_rules_pass_promtool_check() -> None:
    assert "SUCCESS" in _promtool("check", "rules", RULES)


@needs_promtool
def test_rule_unit_tests_pass() -> None:
    # Run where the test file is: its rule_files are relative to it.
    assert "SUCCESS" in _promtool("test", "rules", RULE_TESTS.name, cwd=PROMETHEUS)


@needs_promtool
def test_scrape_config_is_valid_and_loads_the_rules() -> None:
    _promtool("check", "config", CONFIG)
    config = yaml.safe_load(CONFIG.read_text())
    assert RULES.name in config["rule_files"]
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "qhybrid"]
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8000"]


def _input_series() -> list[dict[str, str]]:
    """Every family the service exposes, from two API replicas, growing for 30 minutes."""
    series: list[tuple[str, str]] = []
    http = 'method="GET", route="/v1/jobs"'
    for status in ("200", "500"):
        series.append((f'qhybrid_http_requests_total{{{http}, status="{status}"}}', "0+3x30"))
    series.append(("qhybrid_http_requests_total"
                   '{method="GET", route="/healthz", status="503"}', "0+1x30"))
    for kind in ("run", "promote"):
        series.append((f'qhybrid_jobs_accepted_total{{kind="{kind}", sla="interactive"}}',
                       "0+2x30"))
        for status in ("queued", "running", "succeeded", "failed", "cancelled"):
            series.append((f'qhybrid_jobs{{status="{status}", kind="{kind}", '
                           'sla="interactive"}', "0+1x30"))
    histograms = {"qhybrid_http_request_seconds": http, "qhybrid_job_queue_seconds":
                  'sla="interactive"', "qhybrid_job_result_seconds":
                  'kind="run", sla="interactive"', "qhybrid_dispatch_batch_size":
                  'sla="interactive"', "qhybrid_job_qpu_seconds": ""}
    for name, labels in histograms.items():
        sep = ", " if labels else ""
        for le, values in (("1", "0+1x30"), ("10", "0+2x30"), ("+Inf", "0+3x30")):
            series.append((f'{name}_bucket{{{labels}{sep}le="{le}"}}', values))
        series.append((f"{name}_sum{{{labels}}}", "0+9x30"))
        series.append((f"{name}_count{{{labels}}}", "0+3x30"))
    counters = {"qhybrid_backend_selected_total": ("backend", "aer"),
                "qhybrid_retries_total": ("error_class", "transport"),
                "qhybrid_promotions_total": ("decision", "promoted"),
                "qhybrid_webhook_deliveries_total": ("state", "delivered"),
                "qhybrid_webhook_attempts_total": ("outcome", "failed"),
                "qhybrid_submissions_total": ("status", "done"),
                "qhybrid_breaker_trips_total": ("backend", "aer")}
    for name, (label, value) in counters.items():
        series.append((f'{name}{{{label}="{value}"}}', "0+1x30"))
    series.append(('qhybrid_webhook_deliveries_total{state="pending"}', "3 1 4 1 5 9 2 6"))
    series.append(("qhybrid_qpu_seconds_total", "0+1.5x30"))
    series.append(('qhybrid_breaker_state{backend="aer"}', "0 0 2 2 1 0x25"))
    series.append(('qhybrid_sla_queue_target_seconds{sla="interactive"}', "15x30"))

    out = []
    for text, values in series:
        name, _, labels = text.partition("{")
        labels = labels.rstrip("}")
        for instance in ("10.0.0.1:8000", "10.0.0.2:8000"):
            extra = f'job="qhybrid", instance="{instance}"'
            out.append({"series": f"{name}{{{labels + ', ' if labels else ''}{extra}}}",
                        "values": values})
    return out


@needs_promtool
def test_dashboard_queries_parse_and_evaluate(tmp_path: Path) -> None:
    # promtool has no query parser command: each query becomes a recording rule, which
    # `check rules` parses and `test rules` evaluates every minute against two replicas'
    # series (an evaluation error, e.g. a many-to-many match, fails the test).
    queries = _dashboard_queries()
    assert queries
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": record, "expr": expr} for record, expr in queries]}]}
    (tmp_path / "dashboard.rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    _promtool("check", "rules", tmp_path / "dashboard.rules.yml")
    check = {"rule_files": ["dashboard.rules.yml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": _input_series(),
        "promql_expr_test": [{"expr": "max(qhybrid_sla_queue_target_seconds)",
                              "eval_time": "30m",
                              "exp_samples": [{"labels": "{}", "value": 15}]}]}]}
    (tmp_path / "dashboard.test.yml").write_text(yaml.safe_dump(check, sort_keys=False))
    _promtool("test", "rules", "dashboard.test.yml", cwd=tmp_path)


# --- names ----------------------------------------------------------------------------------


@pytest.fixture
def exposed(settings: Settings) -> set[str]:
    """The series names the service's /metrics can hold, from a real exposition (with a QPU
    budget set, whose two gauges exist only then)."""
    jobs = usecases.job_store(settings)
    store = usecases.state_store(settings)
    try:
        body, _ = ServiceMetrics(jobs, store, DEFAULT_POLICIES,
                                 price_per_qpu_second=settings.qpu_price_per_second,
                                 budget=QpuBudget(seconds=100.0, window_seconds=3600.0)).render()
    finally:
        jobs.engine.dispose()
        store.engine.dispose()
    names = set()
    for family in text_string_to_metric_families(body.decode()):
        names |= {family.name + suffix for suffix in SERIES_SUFFIXES[family.type]}
    assert "qhybrid_jobs" in names and "qhybrid_http_requests_total" in names
    return names


def test_the_qpu_budget_gauges_show_the_cap_and_what_the_window_spent(
        settings: Settings) -> None:
    jobs = usecases.job_store(settings)
    store = usecases.state_store(settings)
    budget = QpuBudget(seconds=100.0, window_seconds=3600.0)
    try:
        store.claim("k", "ibm:fake_manila", "sample", None, owner="o", stale_after=30,
                    qpu_seconds=12.5, budget=budget)
        store.claim("sim", "aer", "sample", None, owner="o", stale_after=30, budget=budget)
        values = {}
        for with_budget in (budget, None):
            body, _ = ServiceMetrics(jobs, store, DEFAULT_POLICIES, price_per_qpu_second=1.0,
                                     budget=with_budget).render()
            values[with_budget is not None] = {
                s.name: s.value for f in text_string_to_metric_families(body.decode())
                for s in f.samples if s.name.startswith("qhybrid_qpu_budget")}
    finally:
        jobs.engine.dispose()
        store.engine.dispose()
    assert values[True] == {"qhybrid_qpu_budget_seconds": 100.0,
                            "qhybrid_qpu_budget_spent_seconds": 12.5}
    assert values[False] == {}  # no budget set: no series, and the alert stays quiet


def test_every_metric_the_rules_use_is_exposed(exposed: set[str]) -> None:
    used = set()
    for rule in _rules():
        used |= _names_in(rule["expr"])
        for text in rule.get("annotations", {}).values():
            used |= set(_METRIC.findall(text))  # annotation templates quote their queries
    assert {"qhybrid_breaker_state", "qhybrid_job_queue_seconds_bucket",
            "qhybrid_sla_queue_target_seconds"} <= used
    assert used - exposed == set(), f"not exposed by /metrics: {sorted(used - exposed)}"


def test_every_metric_the_dashboard_uses_is_exposed(exposed: set[str]) -> None:
    used = set()
    for _, expr in _dashboard_queries():
        used |= _names_in(expr)
    for variable in _dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            used |= _names_in(variable["definition"])
    assert "qhybrid_webhook_deliveries_total" in used
    assert used - exposed == set(), f"not exposed by /metrics: {sorted(used - exposed)}"


# --- shape ----------------------------------------------------------------------------------


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for line in markdown.splitlines():
        if match := re.match(r"#{1,6}\s+(.*)", line):
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            out.add(text.replace(" ", "-"))
    return out


@pytest.mark.parametrize("rule", [r for r in _rules() if "alert" in r],
                         ids=lambda r: str(r["alert"]))
def test_every_alert_has_severity_annotations_and_a_runbook_section(
        rule: dict[str, Any]) -> None:
    labels, annotations = rule.get("labels", {}), rule.get("annotations", {})
    assert labels.get("severity") in ("critical", "warning", "info")
    assert {"summary", "description", "runbook"} <= set(annotations)
    page, _, anchor = annotations["runbook"].partition("#")
    assert page == "docs/operations.md"
    assert anchor in _anchors(RUNBOOKS.read_text()), f"no heading #{anchor} in {page}"


def test_every_alert_has_a_unit_test() -> None:
    tested = {case["alertname"] for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for case in test.get("alert_rule_test", [])}
    assert {r["alert"] for r in _rules() if "alert" in r} <= tested


def test_dashboard_panels_read_the_prometheus_input() -> None:
    dashboard = _dashboard()
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    panels = list(_panels(dashboard["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"{panel['title']}: no query"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
