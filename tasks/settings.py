"""Settings where a flow runs: read from the environment there, with secrets from Prefect
blocks, so that they never travel as flow parameters.

A command that runs a flow in its own process may override settings for it (``qhybrid sweep
--runner dask``) with :func:`settings_overrides`: the flow reads them as if they were in the
environment, and nothing is written to the environment.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType

from prefect.blocks.system import Secret
from pydantic import SecretStr

from backends import Runner
from qhybrid.core import BackendNameError, Settings, load_settings, settle_collector
from qhybrid_control import class_settings
from qhybrid_usecases import Services
from tasks.submission import prefect_runner


def resolve_ibm_token(settings: Settings) -> Settings:
    """``settings`` with ``ibm_token`` read from the Prefect Secret block ``ibm_token_block``.

    A token set directly (``QHYBRID_IBM_TOKEN``) wins; without a block name nothing changes.

    Raises:
        BackendNameError: No Secret block of that name (field ``ibm_token_block``).
    """
    if settings.ibm_token is not None or not settings.ibm_token_block:
        return settings
    try:
        block = Secret.load(settings.ibm_token_block)
        assert isinstance(block, Secret), "Secret.load is synchronous outside an event loop"
        value = block.get()
    except ValueError as exc:  # Prefect raises ValueError for a missing block document
        raise BackendNameError(f"no Prefect Secret block named '{settings.ibm_token_block}'",
                               field="ibm_token_block") from exc
    return settings.model_copy(update={"ibm_token": SecretStr(str(value))})


_OVERRIDES: ContextVar[Mapping[str, str]] = ContextVar(
    "qhybrid_settings_overrides", default=MappingProxyType({}))


@contextlib.contextmanager
def settings_overrides(variables: Mapping[str, str]) -> Iterator[None]:
    """Within the block, :func:`read_settings` in this thread (and the flows it runs here)
    reads ``variables`` (``QHYBRID_*`` names) over the environment's."""
    token = _OVERRIDES.set({**_OVERRIDES.get(), **variables})
    try:
        yield
    finally:
        _OVERRIDES.reset(token)


def read_settings() -> Settings:
    """The ``QHYBRID_*`` settings of this process (with any :func:`settings_overrides`), with
    the IBM token resolved.

    Raises:
        InvalidInputError: An unknown ``QHYBRID_*`` variable or an invalid value, naming it.
        BackendNameError: The named Secret block does not exist.
    """
    return resolve_ibm_token(load_settings({**os.environ, **_OVERRIDES.get()}))


def flow_services(runner: Runner | None = None, *, sla: str | None = None) -> Services:
    """The collaborators of one flow run: settings read here, each provider submission a
    ``submit-job`` task run with the settings' retries (unless ``runner`` says otherwise), or
    with SLA class ``sla``'s retry policy where the class sets one.

    Raises:
        InvalidInputError: An invalid ``QHYBRID_*`` variable (QHYBRID_SLA_POLICIES among
            them), or ``sla`` names no class.
        BackendNameError: The named Secret block does not exist.
    """
    settle_collector()
    settings = read_settings()
    if sla is not None:
        settings = class_settings(settings, sla)
    return Services.open(settings, runner=runner or prefect_runner(settings))

