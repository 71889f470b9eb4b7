"""The application layer: qhybrid's use cases as plain functions, free of Prefect.

Every entry point calls these: the CLI directly (preflight, replay, show, experiments,
leases), and the Prefect tasks as one-line wrappers (each gate, record, decide and apply,
fail). Inputs are immutable (:class:`RunHandle`, the spec, contracts); collaborators are
explicit (:class:`Services`). A run goes::

    open_run -> ideal_gate -> statistical_gate -> hardware_gate -> baseline_gate
             -> decide_promotion -> record_evidence -> apply_promotion -> finish_run
    (any failure: fail_run, which releases leases and ends the MLflow run FAILED or KILLED)
"""

from qhybrid_usecases._callbacks import deliver_due
from qhybrid_usecases._dispatch import DispatchReport, Launcher, claim_more, dispatch_once
from qhybrid_usecases._drawing import PlotDrawer
from qhybrid_usecases._evaluate import PromotedExperiment, evaluate_jobs, resolve_model
from qhybrid_usecases._gates import baseline_gate, ideal_gate, run_on_backend, statistical_gate
from qhybrid_usecases._hardware import hardware_gate, mitigation_arms
from qhybrid_usecases._inputs import Inputs, backends_of, load_inputs, preflight
from qhybrid_usecases._inspect import experiments, leases, show
from qhybrid_usecases._jobs import (
    JobWork,
    accept_job,
    begin_job,
    cancel_job,
    fail_job,
    finish_job,
    job_page,
    job_result,
    job_result_data,
    job_status,
    job_store,
    qpu_budget,
    service_metrics,
    state_store,
)
from qhybrid_usecases._promotion import apply_promotion, decide_promotion
from qhybrid_usecases._reaper import ABANDONED_REASON, AbandonedRun, reap_abandoned
from qhybrid_usecases._records import RecordedRun, counts_sha256, finish_run, record_evidence
from qhybrid_usecases._replay import replay, verify_replay
from qhybrid_usecases._run import (
    RunHandle,
    RunKind,
    StepOutcome,
    TrialOutcome,
    fail_run,
    fail_unhanded_runs,
    failure_reason,
    interrupted,
    open_run,
    release_flow_run_leases,
    terminated,
)
from qhybrid_usecases._services import Services
from qhybrid_usecases._sweep import (
    SweepOutcome,
    check_canary,
    default_output,
    finish_sweep,
    sweep_points,
)
from qhybrid_usecases._sweep_chunk import (
    ChunkValues,
    EvaluateChunks,
    SweepChunk,
    evaluate_chunk,
    evaluate_sweep_chunk,
    in_process,
)
from qhybrid_usecases._sweep_jobs import (
    PARQUET_MEDIA_TYPE,
    ParquetDownload,
    finish_sweep_job,
    sweep_job_output,
    sweep_job_parquet,
)
from qhybrid_usecases._sweep_plan import (
    drop_plan,
    keep_plan,
    plan_path,
    resumed_chunk,
    sweep_identity,
)
from qhybrid_usecases._sweep_points import ChunkSize, DeviceState, choose_chunk_size, device_state

__all__ = [
    "ABANDONED_REASON",
    "PARQUET_MEDIA_TYPE",
    "AbandonedRun",
    "ChunkSize",
    "ChunkValues",
    "DeviceState",
    "DispatchReport",
    "EvaluateChunks",
    "Inputs",
    "JobWork",
    "Launcher",
    "ParquetDownload",
    "PlotDrawer",
    "PromotedExperiment",
    "RecordedRun",
    "RunHandle",
    "RunKind",
    "Services",
    "StepOutcome",
    "SweepChunk",
    "SweepOutcome",
    "TrialOutcome",
    "accept_job",
    "apply_promotion",
    "backends_of",
    "baseline_gate",
    "begin_job",
    "cancel_job",
    "check_canary",
    "choose_chunk_size",
    "claim_more",
    "counts_sha256",
    "decide_promotion",
    "default_output",
    "deliver_due",
    "device_state",
    "dispatch_once",
    "drop_plan",
    "evaluate_chunk",
    "evaluate_jobs",
    "evaluate_sweep_chunk",
    "experiments",
    "fail_job",
    "fail_run",
    "fail_unhanded_runs",
    "failure_reason",
    "finish_job",
    "finish_run",
    "finish_sweep",
    "finish_sweep_job",
    "hardware_gate",
    "ideal_gate",
    "in_process",
    "interrupted",
    "job_page",
    "job_result",
    "job_result_data",
    "job_status",
    "job_store",
    "keep_plan",
    "leases",
    "load_inputs",
    "mitigation_arms",
    "open_run",
    "plan_path",
    "preflight",
    "qpu_budget",
    "reap_abandoned",
    "record_evidence",
    "release_flow_run_leases",
    "replay",
    "resolve_model",
    "resumed_chunk",
    "run_on_backend",
    "service_metrics",
    "show",
    "state_store",
    "statistical_gate",
    "sweep_identity",
    "sweep_job_output",
    "sweep_job_parquet",
    "sweep_points",
    "terminated",
    "verify_replay",
]
