"""The system of record: MLflow runs and registry, the promotion log, DVC pins, manifests.

Never imports qiskit: circuits arrive here as files and hashes. The plots (matplotlib and
Pillow) are loaded on first use, in the thread that draws them, not by every command.
"""

from typing import TYPE_CHECKING

from registry._dvc import DataPin, file_md5, pin_inputs
from registry._manifest import read_manifest, write_manifest
from registry._model import EVIDENCE, MODEL_PATH, ModelInterface, log_model, quiet_pyfunc_import
from registry._promotion_log import append_decision, read_decisions
from registry._provenance import git_commit, package_versions
from registry._shared import (
    SHARED_META,
    share_decision,
    share_manifest,
    shared_decisions,
    shared_manifest,
)
from registry._tracking import SCORE_TAG, Tracker

if TYPE_CHECKING:
    from registry._plots import (
        arms_png,
        circuit_png,
        convergence_png,
        distributions_png,
        histogram_png,
        repeats_png,
        sweep_png,
    )

_PLOTS = ("arms_png", "circuit_png", "convergence_png", "distributions_png", "histogram_png",
          "repeats_png", "sweep_png")


def __getattr__(name: str) -> object:
    if name in _PLOTS:
        from registry import _plots

        return getattr(_plots, name)
    raise AttributeError(f"module 'registry' has no attribute {name!r}")


__all__ = [
    "EVIDENCE",
    "MODEL_PATH",
    "SCORE_TAG",
    "SHARED_META",
    "DataPin",
    "ModelInterface",
    "Tracker",
    "append_decision",
    "arms_png",
    "circuit_png",
    "convergence_png",
    "distributions_png",
    "file_md5",
    "git_commit",
    "histogram_png",
    "log_model",
    "package_versions",
    "pin_inputs",
    "quiet_pyfunc_import",
    "read_decisions",
    "read_manifest",
    "repeats_png",
    "share_decision",
    "share_manifest",
    "shared_decisions",
    "shared_manifest",
    "sweep_png",
    "write_manifest",
]
