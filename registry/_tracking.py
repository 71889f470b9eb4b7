"""MLflow as the system of record: runs, nested gate runs, the model registry and aliases.

Uses ``MlflowClient`` with explicit run ids rather than the fluent API, whose active-run stack
is per thread and would tangle with Prefect's task runners. The store is opened, and MLflow's
errors translated, in :mod:`registry._store_opening`.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException

from qhybrid.core import (
    ModelVersionRecord,
    RunRecord,
    Settings,
    redact_url,
)
from registry._store_opening import mapped, open_client

SCORE_TAG = "qhybrid.score"
_MAX_PARAM = 6000
# MLflow's client writes "View run ... at: <url>" to sys.stdout when it ends a run on a
# tracking server; stdout belongs to the command's report (``--json``), so the lines go to
# stderr. One lock: redirecting sys.stdout is process-wide, and interleaved redirections from
# two threads could leave it pointing at stderr.
_STDOUT = threading.Lock()
# A run's plot thread logs files while its main thread logs others, into the same folders:
# MLflow's local artifact store checks for a folder and then creates it, and the thread that
# loses that race fails ("File exists"). One process, one artifact upload at a time.
_ARTIFACTS = threading.Lock()


def _quoted(value: str) -> str:
    """``value`` inside a single-quoted MLflow search string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _record(run: Run) -> RunRecord:
    return RunRecord(
        run_id=run.info.run_id, name=run.info.run_name, status=run.info.status,
        start_time=run.info.start_time, end_time=run.info.end_time,
        artifact_uri=run.info.artifact_uri, params=dict(run.data.params),
        metrics=dict(run.data.metrics),
        tags={k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
    )


class Tracker:
    """Writes and reads qhybrid's records in one MLflow store.

    Args:
        tracking_uri: e.g. ``sqlite:///…/mlruns/mlflow.db``.
        artifact_root: Folder under which the experiment keeps its artifacts.
        experiment: MLflow experiment name.
    """

    def __init__(self, tracking_uri: str, artifact_root: Path, experiment: str) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self.experiment_name = experiment
        self.client = open_client(tracking_uri)
        self._experiment_id: str | None = None

    @classmethod
    def for_settings(cls, settings: Settings) -> Tracker:
        """The tracker of the store these settings name."""
        return cls(settings.tracking_uri, settings.artifact_root, settings.mlflow_experiment)

    @property
    def is_server(self) -> bool:
        """Whether the store is a tracking server (``http(s)://``) rather than a database."""
        return self.tracking_uri.startswith(("http://", "https://"))

    @property
    @mapped("open the experiment")
    def experiment_id(self) -> str:
        """The experiment's id, created on first use with artifacts under ``artifact_root``, or
        where a tracking server keeps them (``artifact_root`` is then not used: it is a path on
        this machine, and the team's clients are on others)."""
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment_name)
            if found is None:
                location = None  # a tracking server chooses it: its artifact root or proxy
                if not self.is_server:
                    self.artifact_root.mkdir(parents=True, exist_ok=True)
                    location = self.artifact_root.as_uri()
                try:
                    self._experiment_id = self.client.create_experiment(
                        self.experiment_name, artifact_location=location
                    )
                except MlflowException:  # another process created it meanwhile
                    again = self.client.get_experiment_by_name(self.experiment_name)
                    if again is None:
                        raise
                    self._experiment_id = again.experiment_id
            else:
                self._experiment_id = found.experiment_id
        return self._experiment_id

    @mapped("start a run")
    def start_run(
        self, name: str, tags: Mapping[str, str], parent_run_id: str | None = None
    ) -> str:
        """Create a run (nested under ``parent_run_id`` if given) and return its id."""
        all_tags = dict(tags)
        if parent_run_id is not None:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=name)
        run_id: str = run.info.run_id
        return run_id

    @mapped("end a run")
    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        """Mark a run FINISHED, FAILED or KILLED, with its end time; MLflow's link to the run
        goes to stderr, never to stdout."""
        with _STDOUT, contextlib.redirect_stdout(sys.stderr):
            self.client.set_terminated(run_id, status=status)

    @mapped("log dataset inputs")
    def log_datasets(self, run_id: str, datasets: Mapping[str, Mapping[str, object]]) -> None:
        """Log each DVC-pinned input as an MLflow dataset named by its path, with the DVC md5
        as its digest (the UI's "Datasets" column).

        Args:
            run_id: The run that used the inputs.
            datasets: Path (relative to the project root) -> its pin: ``md5``, and what else
                the pin says (``stage``, ``dvc_lock_md5``, ``matches_lock``), kept as the
                dataset's profile.
        """
        inputs = [
            DatasetInput(
                Dataset(name=path, digest=str(pin["md5"]), source_type="dvc",
                        source=json.dumps({"path": path, "stage": pin.get("stage")}),
                        profile=json.dumps({k: v for k, v in sorted(pin.items()) if k != "md5"})),
                tags=[InputTag("mlflow.data.context", "input")])
            for path, pin in sorted(datasets.items())
        ]
        if inputs:
            self.client.log_inputs(run_id, datasets=inputs)

    @mapped("log params, metrics and tags")
    def log_values(
        self, run_id: str, *, params: Mapping[str, str] | None = None,
        metrics: Mapping[str, float] | None = None, tags: Mapping[str, str] | None = None,
        series: Mapping[str, Iterable[float]] | None = None, step: int = 0,
    ) -> None:
        """Log params (values cut to MLflow's length limit), metrics at ``step``, tags and
        metric series (each at steps 0, 1, 2, …, e.g. the objective per optimiser iteration)
        with one ``log_batch``, which MLflow cuts into requests within its limits: one
        request for a run's usual record."""
        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            params=[Param(k, str(v)[:_MAX_PARAM]) for k, v in sorted((params or {}).items())],
            metrics=[*(Metric(k, float(v), now, step) for k, v in sorted((metrics or {}).items())),
                     *(Metric(key, float(v), now, i)
                       for key, values in sorted((series or {}).items())
                       for i, v in enumerate(values))],
            tags=[RunTag(k, str(v)) for k, v in sorted((tags or {}).items())])

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        """Log params (values cut to MLflow's length limit)."""
        self.log_values(run_id, params=params)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log metrics at one step."""
        self.log_values(run_id, metrics=metrics, step=step)

    def log_series(self, run_id: str, key: str, values: Iterable[float]) -> None:
        """Log one metric at steps 0, 1, 2, … (e.g. the objective per optimiser iteration)."""
        self.log_values(run_id, series={key: values})

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set tags on a run."""
        self.log_values(run_id, tags=tags)

    @mapped("log artifacts")
    def log_artifacts(self, run_id: str, folder: Path, artifact_path: str | None = None) -> None:
        """Upload every file under ``folder``."""
        with _ARTIFACTS:
            self.client.log_artifacts(run_id, str(folder), artifact_path)

    @mapped("log an artifact")
    def log_dict(self, run_id: str, data: object, name: str) -> None:
        """Store a JSON document as an artifact."""
        with _ARTIFACTS:
            self.client.log_text(run_id, json.dumps(data, indent=1, sort_keys=True), name)

    @mapped("read the artifact location")
    def artifact_uri(self, run_id: str) -> str:
        """The run's artifact root URI."""
        uri: str = self.client.get_run(run_id).info.artifact_uri
        return uri

    @mapped("read a run")
    def get_run(self, run_id: str) -> RunRecord:
        """A run's info, params, metrics and tags."""
        return _record(self.client.get_run(run_id))

    @mapped("search running runs")
    def running(self, tags: Mapping[str, str]) -> list[RunRecord]:
        """The runs still RUNNING whose tags hold ``tags``."""
        clauses = ["attributes.status = 'RUNNING'"]
        clauses += [f"tags.`{key}` = '{value}'" for key, value in sorted(tags.items())]
        runs = self.client.search_runs([self.experiment_id], filter_string=" and ".join(clauses))
        return [_record(r) for r in runs]

    @mapped("list run inputs")
    def datasets(self, run_id: str) -> dict[str, str]:
        """The datasets a run logged as inputs: name -> digest."""
        inputs = self.client.get_run(run_id).inputs
        found = inputs.dataset_inputs if inputs is not None else None
        return {d.dataset.name: d.dataset.digest for d in (found or [])}

    @mapped("list child runs")
    def child_runs(self, run_id: str) -> list[RunRecord]:
        """The runs nested under ``run_id``, in start order."""
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'",
            order_by=["attributes.start_time ASC"],
        )
        return [_record(r) for r in runs]

    # --- model registry ---------------------------------------------------------------------

    @mapped("register a model version")
    def register_version(
        self, name: str, run_id: str, artifact_path: str, tags: Mapping[str, str]
    ) -> str:
        """Register ``runs:/run_id/artifact_path`` as a new version of model ``name``."""
        try:
            self.client.get_registered_model(name)
        except MlflowException:
            with contextlib.suppress(MlflowException):  # another process may create it too
                self.client.create_registered_model(
                    name, description="A qhybrid experiment; versions are promoted runs."
                )
        source = f"{self.artifact_uri(run_id)}/{artifact_path}"
        version = self.client.create_model_version(
            name, source=source, run_id=run_id, tags=dict(tags)
        )
        return str(version.version)

    @mapped("search model versions")
    def version_with_tag(self, name: str, key: str, value: str) -> ModelVersionRecord | None:
        """The oldest version of model ``name`` tagged ``key=value``, or None."""
        if not self.client.search_registered_models(f"name = '{_quoted(name)}'"):
            return None
        found = self.client.search_model_versions(
            f"name = '{_quoted(name)}' and tags.`{key}` = '{_quoted(value)}'")
        if not found:
            return None
        oldest = min(found, key=lambda v: int(v.version))
        return ModelVersionRecord(name=name, version=str(oldest.version), run_id=oldest.run_id,
                                  aliases=tuple(oldest.aliases or ()),
                                  tags=dict(oldest.tags or {}))

    @mapped("read an artifact")
    def read_text(self, run_id: str, path: str) -> str | None:
        """The text of the run's artifact at ``path``, or None if the run has none there."""
        folder, _, _ = path.rpartition("/")
        if path not in {a.path for a in self.client.list_artifacts(run_id, folder or None)}:
            return None
        with tempfile.TemporaryDirectory(prefix="qhybrid-artifact-") as tmp:
            local = self.client.download_artifacts(run_id, path, tmp)
            return Path(local).read_text(encoding="utf-8")

    def run_page(self, run_id: str, *, local_port: int = 5000) -> str:
        """The MLflow UI's page of a run: on the tracking server for an ``http(s)`` store (its
        password masked), else on a UI serving this store on ``local_port``."""
        base = (redact_url(self.tracking_uri).rstrip("/") if self.is_server
                else f"http://127.0.0.1:{local_port}")
        return f"{base}/#/experiments/{self.experiment_id}/runs/{run_id}"

    def ui_hint(self, run_id: str, *, local_port: int = 5000) -> str:
        """Where a person sees the run: the server's page, or the command that serves a local
        store and the page it then shows (its password masked)."""
        if self.is_server:
            return self.run_page(run_id)
        return (f"mlflow ui --backend-store-uri {redact_url(self.tracking_uri)} "
                f"--port {local_port}   # then {self.run_page(run_id, local_port=local_port)}")

    @mapped("move an alias")
    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point ``alias`` of model ``name`` at ``version``."""
        self.client.set_registered_model_alias(name, alias, version)

    @mapped("read an alias")
    def version_by_alias(self, name: str, alias: str) -> ModelVersionRecord | None:
        """The version holding ``alias``, or None if no version holds it."""
        try:
            mv = self.client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise
        return ModelVersionRecord(
            name=name, version=str(mv.version), run_id=mv.run_id,
            aliases=tuple(mv.aliases or ()), tags=dict(mv.tags or {}),
        )

    def champion_score(self, name: str) -> float | None:
        """The score recorded on the version that holds ``champion``."""
        champion = self.version_by_alias(name, "champion")
        if champion is None or SCORE_TAG not in champion.tags:
            return None
        return float(champion.tags[SCORE_TAG])

    @mapped("list registered models")
    def registered(self) -> list[tuple[str, list[ModelVersionRecord]]]:
        """Every registered model with its versions, newest first."""
        out: list[tuple[str, list[ModelVersionRecord]]] = []
        for model in self.client.search_registered_models():
            versions = self.client.search_model_versions(f"name = '{model.name}'")
            # search results carry no aliases; the registered model maps alias -> version.
            holders: dict[str, list[str]] = {}
            aliases = self.client.get_registered_model(model.name).aliases or {}
            for alias, number in aliases.items():
                holders.setdefault(str(number), []).append(alias)
            records = [
                ModelVersionRecord(
                    name=model.name, version=str(v.version), run_id=v.run_id,
                    aliases=tuple(sorted(holders.get(str(v.version), []))), tags=dict(v.tags or {}),
                )
                for v in versions
            ]
            records.sort(key=lambda r: int(r.version), reverse=True)
            out.append((model.name, records))
        return sorted(out)
