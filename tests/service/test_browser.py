"""What a person sees in a browser: the service's Prefect UI, the job API's docs page and the MLflow
UI, in headless Chromium (Debian's, launched by Playwright; `scripts/system-deps.sh` installs
it) after one served job. Every page must work on loopback alone: a request that leaves the
machine (a CDN's script, say) is refused and named in the failure.

On a failure the page's screenshot lands in the test's tmp folder (its path is printed).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from tests.service._harness import Service, submit

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (run scripts/system-deps.sh)",
                allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)")

UI_MS = 30_000  # for a page to show what is awaited: first loads of a big single-page app
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


@pytest.fixture(scope="module")
def served(service: Service) -> tuple[Service, dict[str, Any]]:
    """The service, with one `run` job that has ended."""
    job = submit(service, {"kind": "run", "spec_path": "specs/vqe-h2.yaml", "backend": "aer",
                           "sla": "interactive"})
    ended = service.wait_ended(job["id"])
    assert ended["status"] == "succeeded", ended
    return service, ended


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@dataclass
class Tab:
    """A page that may reach loopback only; what it tried to fetch from elsewhere is refused."""

    page: Any
    refused: list[str] = field(default_factory=list)

    def visit(self, url: str) -> Any:
        self.page.goto(url)
        assert self.refused == [], f"{url} fetches from outside the machine: {self.refused}"
        return self.page


@contextlib.contextmanager
def opened(browser: Any, tmp_path: Path, name: str) -> Iterator[Tab]:
    """A fresh tab; on a failure, its screenshot in ``tmp_path``."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(UI_MS)
    tab = Tab(context.new_page())

    def guard(route: Any) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            tab.refused.append(route.request.url)
            route.abort("blockedbyclient")

    context.route(re.compile(r"^https?://"), guard)
    try:
        yield tab
        assert tab.refused == [], f"{name} fetches from outside the machine: {tab.refused}"
    except BaseException:
        shot = tmp_path / f"{name}.png"
        with contextlib.suppress(Exception):
            tab.page.screenshot(path=str(shot), full_page=True)
            print(f"{name}: screenshot {shot} at {tab.page.url}", file=sys.stderr)
        raise
    finally:
        context.close()


def test_the_prefect_ui_shows_the_jobs_flow_run_with_its_tags_and_artifact(
        served: tuple[Service, dict[str, Any]], browser: Any, tmp_path: Path) -> None:
    svc, job = served
    ui = svc.prefect_api.removesuffix("/api")
    name = f"run vqe-h2 job {job['id'][:8]}"
    expect = sync_api.expect
    with opened(browser, tmp_path, "prefect-flow-run") as tab:
        page = tab.visit(f"{ui}/runs/flow-run/{job['prefect_flow_run_id']}")
        # The UI's scripts call the API it is told of; another one, a person sees "Can't
        # connect to Server API".
        api_url = httpx.get(f"{ui}/ui-settings", timeout=30).json()["api_url"]
        assert api_url == svc.prefect_api, (
            f"the Prefect UI on {ui} calls the API at {api_url}: `qhybrid serve` must start "
            f"the server with PREFECT_SERVER_UI_API_URL={svc.prefect_api}")
        expect(page).to_have_title(re.compile(re.escape(name)), timeout=UI_MS)
        expect(page.get_by_text(name, exact=True).first).to_be_visible(timeout=UI_MS)
        for tag in (f"job:{job['id']}", f"trace:{job['trace_id']}", f"sla:{job['sla']}",
                    "kind:run"):
            expect(page.get_by_text(tag, exact=True)).to_be_visible(timeout=UI_MS)
        expect(page.get_by_text("Completed", exact=True).first).to_be_visible(timeout=UI_MS)

        # Its artifact: the table of the jobs it served, this job's row among them.
        tabs = page.get_by_role("tablist")
        tabs.get_by_text("Artifacts", exact=True).click()
        artifact = page.get_by_text("served-jobs", exact=True)
        expect(artifact).to_be_visible(timeout=UI_MS)
        artifact.click()
        expect(page).to_have_url(re.compile(r"/artifacts/artifact/"), timeout=UI_MS)
        row = page.get_by_role("row").filter(has_text=job["id"])
        expect(row).to_be_visible(timeout=UI_MS)
        for cell in ("succeeded", job["trace_id"], job["mlflow_run_id"]):
            expect(row.get_by_text(cell, exact=True)).to_be_visible(timeout=UI_MS)

        # Its child: the experiment's own flow run, reachable from the parent.
        page.go_back()
        page.get_by_role("tablist").get_by_text("Subflow Runs", exact=True).click()
        child = page.get_by_role("link", name=re.compile(
            rf"^run vqe-h2 \S+ job {job['id'][:8]}$"))
        expect(child).to_be_visible(timeout=UI_MS)


@pytest.fixture(scope="module")
def refused(service: Service) -> dict[str, Any]:
    """A promotion job that ended refused: vqe-h2 (the cheapest promotion) with a statistical
    gate no estimate can pass."""
    import yaml

    spec = yaml.safe_load((Path(__file__).parents[2] / "specs" / "vqe-h2.yaml").read_text())
    spec["gates"]["statistical"]["threshold"] = 1e-12
    job = submit(service, {"kind": "promote", "spec": spec, "sla": "interactive"})
    ended = service.wait_ended(job["id"])
    assert ended["status"] == "succeeded", ended  # a refusal is the promotion's answer
    return ended


def test_a_refused_promotion_shows_refused_in_the_runs_list(
        service: Service, refused: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    ended = job = refused
    ui = service.prefect_api.removesuffix("/api")
    expect = sync_api.expect
    with opened(browser, tmp_path, "prefect-refused") as tab:
        page = tab.visit(f"{ui}/runs/flow-run/{ended['prefect_flow_run_id']}")
        page.get_by_role("tablist").get_by_text("Subflow Runs", exact=True).click()
        # The list's row of the promotion: its name, and the state badge Refused.
        name = re.compile(rf"^promote vqe-h2 1\.0\.0 job {job['id'][:8]}$")
        link = page.get_by_role("link", name=name)
        expect(link).to_be_visible(timeout=UI_MS)
        row = page.locator(".flow-run-list-item").filter(has=link).first
        expect(row.get_by_text("Refused", exact=True)).to_be_visible(timeout=UI_MS)
        link.click()
        expect(page.get_by_text("Refused", exact=True).first).to_be_visible(timeout=UI_MS)
        # The header shows the first tags (the rest behind "+N"): the experiment's among them.
        expect(page.get_by_text("experiment:vqe-h2", exact=True)).to_be_visible(timeout=UI_MS)


def test_the_api_docs_page_shows_the_job_api(
        served: tuple[Service, dict[str, Any]], browser: Any, tmp_path: Path) -> None:
    svc, _ = served
    expect = sync_api.expect
    with opened(browser, tmp_path, "api-docs") as tab:
        page = tab.visit(f"{svc.api}/docs")
        expect(page.get_by_role("heading", name=re.compile(r"^qhybrid job API"))).to_be_visible(
            timeout=UI_MS)
        submit_op = page.locator(".opblock-post").filter(
            has=page.get_by_text("/v1/jobs", exact=True))
        expect(submit_op).to_be_visible(timeout=UI_MS)
        expect(submit_op.get_by_text("Submit a job", exact=True)).to_be_visible(timeout=UI_MS)


def test_the_mlflow_ui_lists_the_jobs_run(
        served: tuple[Service, dict[str, Any]], browser: Any, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    svc, job = served
    run = MlflowClient(tracking_uri=svc.tracking_uri).get_run(job["mlflow_run_id"])
    ui = f"http://127.0.0.1:{svc.env['QHYBRID_MLFLOW_PORT']}"
    expect = sync_api.expect
    with opened(browser, tmp_path, "mlflow-runs") as tab:
        page = tab.visit(f"{ui}/#/experiments/{run.info.experiment_id}/runs")
        # Other tests' runs may share the name: the job's run is the link to its id.
        link = page.locator(f'a[href$="/runs/{run.info.run_id}"]').first
        expect(link).to_be_visible(timeout=UI_MS)
        expect(link).to_have_text(run.info.run_name, timeout=UI_MS)
        link.click()
        expect(page).to_have_url(re.compile(rf"/runs/{run.info.run_id}"), timeout=UI_MS)
        expect(page.get_by_text("final.energy", exact=True)).to_be_visible(timeout=UI_MS)


def test_mlflow_shows_the_gate_runs_finished_and_the_verdicts_side_by_side(
        service: Service, refused: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=service.tracking_uri)
    parent = client.get_run(refused["mlflow_run_id"])
    gates = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert {g.data.tags.get("qhybrid.gate") for g in gates} >= {"ideal", "statistical"}
    assert {g.info.status for g in [parent, *gates]} == {"FINISHED"}
    assert {f"gate.{g.data.tags['qhybrid.gate']}.passed" for g in gates} | {
        "promotion.promoted"} <= set(parent.data.metrics)
    ids = [parent.info.run_id, *(g.info.run_id for g in gates)]
    ui = f"http://127.0.0.1:{service.env['QHYBRID_MLFLOW_PORT']}"
    query = f'runs={json.dumps(ids)}&experiments={json.dumps([parent.info.experiment_id])}'
    expect = sync_api.expect
    with opened(browser, tmp_path, "mlflow-compare") as tab:
        # Each gate run's page says it finished (no spinner for ever).
        for gate in gates:
            page = tab.visit(f"{ui}/#/experiments/{parent.info.experiment_id}/runs/"
                             f"{gate.info.run_id}")
            expect(page.get_by_text("Finished", exact=True).first).to_be_visible(timeout=UI_MS)
        # The compare view lines up the parent's per-gate verdicts and the decision.
        page = tab.visit(f"{ui}/#/compare-runs?{quote(query, safe='=&')}")
        for name in ("gate.statistical.verdict fail", "gate.hardware.verdict pass",
                     "promotion.decision refuse"):
            expect(page.get_by_role("row", name=name).first).to_be_visible(timeout=UI_MS)
        # Its metrics table holds the parent's per-gate evidence, the parent in the first column.
        shown = _compare_view_metrics(page)
        assert shown["gate.statistical.passed"] == "0", shown
        assert shown["gate.hardware.passed"] == "1", shown
        assert shown["promotion.promoted"] == "0", shown
        for key in ("gate.ideal.passed", "promotion.score"):
            assert key in shown and shown[key] not in ("", "-"), (key, shown)


def _compare_view_metrics(page: Any) -> dict[str, str]:
    """Metric name -> the first run's value, as MLflow's compare view draws them.

    The view draws its metrics as two virtualised grids (names, values) that render only the
    rows in view; the names grid follows the values grid's scrolling. The values grid is
    scrolled from top to bottom, and at each step the rows both grids drew are read and paired
    by their position.
    """
    names, values = (page.locator('[role="grid"]').nth(i) for i in (0, 1))
    sync_api.expect(values).to_be_visible(timeout=UI_MS)
    handles = [names.element_handle(), values.element_handle()]
    read = """([names, values]) => {
        const cells = grid => [...grid.children[0].children].map(
            c => [c.style.top, c.style.left, c.innerText.trim()]);
        return [cells(names).map(c => [c[0], c[2]]),
                cells(values).filter(c => c[1] === "0px").map(c => [c[0], c[2]])];
    }"""
    # The names grid takes the values grid's position one scroll event late: move the values
    # grid by a pixel and back until the names grid is where it should be.
    step = """([names, values, top]) => {
        const end = grid => grid.scrollHeight - grid.clientHeight;
        const target = Math.min(top, end(values));
        values.scrollTop = values.scrollTop === target ? target - 1 : target;
        return Math.abs(names.scrollTop - Math.min(target, end(names))) <= 1;
    }"""
    by_top: tuple[dict[str, str], dict[str, str]] = ({}, {})
    top = 0
    while True:
        page.wait_for_function(step, arg=[*handles, top])
        for drawn, cells in zip(by_top, page.evaluate(read, handles), strict=True):
            drawn |= dict(cells)
        if top >= values.evaluate("e => e.scrollHeight - e.clientHeight"):
            return {name: by_top[1].get(at, "") for at, name in by_top[0].items()}
        top += 90
