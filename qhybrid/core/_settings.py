"""Process-wide settings, read once at the edge (CLI, flow entry) and passed down."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from qhybrid.core._errors import InvalidInputError
from qhybrid.core._faults import FaultPlan, parse_faults

ENV_PREFIX = "QHYBRID_"


class Settings(BaseSettings):
    """Where qhybrid keeps its records and how it reaches providers.

    Every field can be set from the environment with the ``QHYBRID_`` prefix, e.g.
    ``QHYBRID_IBM_TOKEN``. Relative paths resolve against ``project_root``.
    """

    model_config = SettingsConfigDict(env_prefix="QHYBRID_", extra="forbid", frozen=True)

    project_root: Path = Field(default_factory=Path.cwd, description="Folder holding dvc.lock.")
    mlflow_tracking_uri: str = Field(
        default="", description="MLflow store; empty means sqlite:///<project_root>/mlruns/mlflow.db."
    )
    mlflow_artifact_root: Path = Field(default=Path("mlruns/artifacts"))
    mlflow_experiment: str = Field(default="qhybrid")
    promotion_log: Path = Field(default=Path("mlruns/promotion-log.jsonl"))
    manifests_dir: Path = Field(default=Path("mlruns/manifests"))
    job_sweeps_dir: Path = Field(
        default=Path("sweeps/jobs"),
        description="Where the job service writes sweep jobs' Parquet files, one per job.")
    ibm_token: SecretStr | None = Field(default=None, description="IBM Quantum API key.")
    ibm_token_block: str | None = Field(
        default=None,
        description="Name of a Prefect Secret block holding the IBM token, read at flow start "
        "when ibm_token is unset.",
    )
    ibm_channel: str = Field(default="ibm_quantum_platform")
    ibm_instance: str | None = Field(default=None)
    state_url: str = Field(
        default="",
        description="SQLAlchemy URL of the execution state store (idempotency ledger, breakers, "
        "leases); empty means sqlite:///<project_root>/.qhybrid/state.db. PostgreSQL works too.",
    )
    submission_retries: int = Field(default=3, ge=0, le=20, description="Retries per submission.")
    retry_backoff_seconds: float = Field(
        default=1.0, ge=0, le=600,
        description="First retry delay; each next one doubles (plus up to 50 % jitter).",
    )
    breaker_threshold: int = Field(
        default=5, ge=1, le=1000, description="Consecutive failures that open a backend's breaker."
    )
    breaker_cooldown_seconds: float = Field(
        default=60.0, ge=0, le=86_400, description="How long an open breaker fails fast."
    )
    qpu_budget_seconds: float | None = Field(
        default=None, gt=0, le=1e9,
        description="QPU seconds, by the backends' estimates, that every submission to a "
        "backend that charges them (IBM devices, real or fake) may use together within "
        "QHYBRID_QPU_BUDGET_WINDOW_SECONDS; a submission that would exceed it is refused "
        "before it is sent. Unset: no limit.",
    )
    qpu_budget_window_seconds: float = Field(
        default=30 * 86_400, gt=0, le=10 * 365 * 86_400,
        description="The window the QPU budget counts over, back from each submission "
        "(default 30 days).",
    )
    cancel_poll_seconds: float = Field(
        default=1.0, ge=0, le=600,
        description="How often a flow asks Prefect whether it was cancelled while it submits "
        "(in a thread; a submission reads the last answer); 0 asks before every submission.",
    )
    api_host: str = Field(default="127.0.0.1", description="Where the job API listens.")
    api_port: int = Field(default=8000, ge=1, le=65535, description="The job API's port.")
    prefect_port: int = Field(default=4200, ge=1, le=65535,
                              description="The Prefect server's port under `qhybrid serve`.")
    prefect_database_url: SecretStr | None = Field(
        default=None,
        description="The Prefect server's database under `qhybrid serve` (e.g. "
        "postgresql+asyncpg://...); default: SQLite under PREFECT_HOME.",
    )
    mlflow_port: int = Field(default=5000, ge=1, le=65535,
                             description="The MLflow UI's port under `qhybrid serve`.")
    hardware_concurrency: int = Field(
        default=2, ge=0, le=1000,
        description="Provider submissions at once per hardware backend (ibm:<device>, fake "
        "devices included) under `qhybrid serve`: the Prefect tag concurrency limit it sets on "
        "backend:<name> for the hardware backends of the project's specs/; 0 sets none.")
    webhook_secrets: SecretStr | None = Field(
        default=None,
        description="Webhook signing secrets by client: client=secret[,client=secret...]; a "
        "request names its client in the X-Qhybrid-Client header (default: 'default').",
    )
    qpu_price_per_second: float = Field(
        default=1.6, ge=0, le=1e6,
        description="Price of one QPU second, for the cost estimates of /metrics (default "
        "1.6: USD 96 per minute, IBM Quantum's pay-as-you-go list price; 0 turns costs off).")
    result_inline_max_bytes: int = Field(
        default=256 * 1024, ge=1024, le=64 * 1024 * 1024,
        description="A job result larger than this (as JSON) is served by reference: the "
        "result object names a URL to fetch its values from.")
    webhook_max_attempts: int = Field(default=8, ge=1, le=100,
                                      description="Attempts per callback before it fails.")
    webhook_backoff_seconds: float = Field(
        default=1.0, ge=0, le=3600,
        description="First callback retry delay; each next one doubles (full jitter).")
    sla_policies: str = Field(
        default="",
        description="JSON overriding SLA classes' policies, e.g. "
        '{"batch-research": {"window_seconds": 30}}.',
    )
    sweep_memory_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1024 * 1024, le=1024**4,
        description="Memory a sweep's chunk may take on a simulator: 2^qubits * 16 bytes (one "
        "statevector) per point of the chunk.")
    sweep_runner: Literal["serial", "dask"] = Field(
        default="serial",
        description="Where a sweep evaluates its chunks: serial, one after the other in the "
        "flow's process; dask, in parallel on a Dask cluster (dask_address, or a local one of "
        "dask_workers processes).")
    dask_address: str = Field(
        default="",
        description="The scheduler of a running Dask cluster (e.g. tcp://10.0.0.5:8786) for "
        "sweep_runner=dask; empty starts a local cluster for each sweep.")
    dask_workers: int = Field(
        default=2, ge=1, le=1024,
        description="Worker processes (one thread each) of the local Dask cluster a sweep "
        "starts when dask_address is empty.")
    sweep_chunks_in_flight: int = Field(
        default=0, ge=0, le=10_000,
        description="Chunks a Dask sweep has submitted and not yet written, at most (memory "
        "stays bounded by them); 0 means twice the cluster's worker threads.")
    faults: str = Field(
        default="",
        description="Faults to inject on purpose, e.g. transport=0.3,execution=0.02,seed=7.",
    )

    @field_validator("faults")
    @classmethod
    def _faults_parse(cls, value: str) -> str:
        parse_faults(value)
        return value

    @field_validator("webhook_secrets")
    @classmethod
    def _secrets_parse(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_client_secrets(value.get_secret_value())
        return value

    @property
    def client_secrets(self) -> dict[str, bytes]:
        """Webhook signing secret by client."""
        if self.webhook_secrets is None:
            return {}
        return parse_client_secrets(self.webhook_secrets.get_secret_value())

    @property
    def fault_plan(self) -> FaultPlan:
        """The parsed fault plan (inactive when ``faults`` is empty)."""
        return parse_faults(self.faults)

    def resolve(self, path: Path) -> Path:
        """Resolve a path against the project root."""
        return path if path.is_absolute() else (self.project_root / path).resolve()

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI, defaulting to SQLite under the project's mlruns/."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self.resolve(Path('mlruns/mlflow.db'))}"

    @property
    def state_store_url(self) -> str:
        """The state store URL, defaulting to SQLite under the project's .qhybrid/."""
        if self.state_url:
            return self.state_url
        return f"sqlite:///{self.resolve(Path('.qhybrid/state.db'))}"

    @property
    def artifact_root(self) -> Path:
        """Absolute folder for MLflow artifacts."""
        return self.resolve(self.mlflow_artifact_root)

    @property
    def promotion_log_path(self) -> Path:
        """Absolute path of the append-only promotion log."""
        return self.resolve(self.promotion_log)

    @property
    def manifests_path(self) -> Path:
        """Absolute folder for local copies of run manifests."""
        return self.resolve(self.manifests_dir)

    @property
    def job_sweeps_path(self) -> Path:
        """Absolute folder for the Parquet files of sweep jobs."""
        return self.resolve(self.job_sweeps_dir)


def parse_client_secrets(text: str) -> dict[str, bytes]:
    """``client=secret,...`` as a mapping; the message never shows a secret.

    Raises:
        ValueError: An entry without ``=``, an empty client or secret, or a client twice.
    """
    secrets: dict[str, bytes] = {}
    for i, entry in enumerate(part for part in text.split(",") if part.strip()):
        client, sep, secret = entry.strip().partition("=")
        if not sep or not client or not secret:
            raise ValueError(f"entry {i + 1} is not client=secret")
        if client in secrets:
            raise ValueError(f"client '{client}' is given twice")
        secrets[client] = secret.encode()
    return secrets


def check_environment(environ: Mapping[str, str]) -> None:
    """Refuse a ``QHYBRID_*`` variable that is no setting: a misspelt setting silently ignored
    would be a wrong run.

    Args:
        environ: The environment the settings are read from (e.g. ``os.environ``).

    Raises:
        InvalidInputError: Naming the variable, with the nearest setting's variable.
    """
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    for variable in sorted(environ):
        if variable.upper().startswith(ENV_PREFIX) and variable.upper() not in known:
            near = difflib.get_close_matches(variable.upper(), sorted(known), n=1)
            hint = f"; did you mean {near[0]}?" if near else ""
            raise InvalidInputError(f"{variable} is not a qhybrid setting{hint}",
                                    field=variable)


def load_settings(environ: Mapping[str, str]) -> Settings:
    """The settings ``environ`` holds (the edge passes ``os.environ``), after
    :func:`check_environment`. Only ``environ`` is read.

    Raises:
        InvalidInputError: An unknown ``QHYBRID_*`` variable, or an invalid value, naming the
            variable.
    """
    check_environment(environ)
    values = {key[len(ENV_PREFIX):].lower(): value for key, value in environ.items()
              if key.upper().startswith(ENV_PREFIX)}
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        variable = f"{ENV_PREFIX}{str(first['loc'][0]).upper()}" if first["loc"] else "settings"
        raise InvalidInputError(f"invalid value: {first['msg']}", field=variable) from None
