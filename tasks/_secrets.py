"""Secrets from Prefect blocks, resolved inside the flow so they never travel as parameters."""

from __future__ import annotations

from prefect.blocks.system import Secret
from pydantic import SecretStr

from qhybrid.core import BackendNameError, Settings


def resolve_ibm_token(settings: Settings) -> Settings:
    """``settings`` with ``ibm_token`` read from the Prefect Secret block ``ibm_token_block``.

    A token set directly (``QHYBRID_IBM_TOKEN``) wins; without a block name nothing changes.

    Raises:
        BackendNameError: No Secret block of that name (field ``ibm_token_block``).
    """
    if settings.ibm_token is not None or not settings.ibm_token_block:
        return settings
    try:
        value = Secret.load(settings.ibm_token_block).get()
    except ValueError as exc:  # Prefect raises ValueError for a missing block document
        raise BackendNameError(f"no Prefect Secret block named '{settings.ibm_token_block}'",
                               field="ibm_token_block") from exc
    return settings.model_copy(update={"ibm_token": SecretStr(str(value))})
