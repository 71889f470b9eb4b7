"""Run options: the small, closed set of choices a flow run takes besides the spec."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qhybrid.core._backend_name import check_backend_name
from qhybrid.core._jobs import SlaClass

RUN_OPTIONS_SCHEMA_VERSION: Final = 1


class RunOptions(BaseModel):
    """How to run a spec, as a flow parameter: plain JSON, no settings and no secrets.

    Settings (stores, tokens, fault plans) are read where the flow runs, so a deployment run
    by a worker behaves like the CLI.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = RUN_OPTIONS_SCHEMA_VERSION
    backend: str | None = Field(
        default=None,
        description="For a run: the backend to run on; default the spec's ideal backend.",
    )
    allow_unpinned_data: bool = Field(
        default=False,
        description="Run on data that does not match dvc.lock (recorded on the run).",
    )

    job_id: str | None = Field(
        default=None, max_length=36, pattern=r"^[0-9a-f-]+$",
        description="The service job this run serves (tagged on its records).")
    trace_id: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{32}$",
        description="The trace id of the request behind this run (tagged on its records).")
    sla: SlaClass | None = Field(
        default=None,
        description="The SLA class of the service job this run serves: the class's retry "
        "policy (QHYBRID_SLA_POLICIES) applies to its provider submissions.")

    _backend = field_validator("backend")(check_backend_name)
