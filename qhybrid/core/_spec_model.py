"""The base of every spec section's model, and the check of a path a spec names."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from qhybrid.core._errors import InvalidInputError
from qhybrid.core._inputs import check_path


class SpecModel(BaseModel):
    """A spec section: frozen, no unknown field, no NaN or infinity."""

    # NaN or infinity is never a meaningful spec value (a threshold, a parameter, a weight).
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def project_path(value: str, *, field: str) -> str:
    """``value``, a path inside the project relative to its root, that ``check_path`` accepts.

    Raises:
        ValueError: Naming what is wrong, for pydantic to report at ``field``.
    """
    if Path(value).is_absolute() or ".." in Path(value).parts:
        raise ValueError("must be a path inside the project, relative to its root")
    try:
        check_path(Path(value), field=field)
    except InvalidInputError as exc:
        raise ValueError(exc.message) from None
    return value
