"""The system of record: MLflow runs and registry, the promotion log, DVC pins, manifests.

Never imports qiskit: circuits arrive here as files and hashes. Each part (MLflow, DVC, the
plots with matplotlib and Pillow) is loaded on first use of one of its names.
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from registry._dvc import DataPin, file_md5, pin_inputs
    from registry._manifest import read_manifest, write_manifest
    from registry._model import (
        EVIDENCE,
        MODEL_PATH,
        ModelInterface,
        log_model,
        quiet_pyfunc_import,
    )
    from registry._plots import (
        arms_png,
        circuit_png,
        convergence_png,
        distributions_png,
        histogram_png,
        prepare_plots,
        repeats_png,
        sweep_png,
    )
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

# Each name is loaded from its module on first use: a process that needs only the plots
# (the drawing process) or only the pins does not import MLflow.
_HOMES = {
    "_dvc": ("DataPin", "file_md5", "pin_inputs"),
    "_manifest": ("read_manifest", "write_manifest"),
    "_model": ("EVIDENCE", "MODEL_PATH", "ModelInterface", "log_model", "quiet_pyfunc_import"),
    "_plots": ("arms_png", "circuit_png", "convergence_png", "distributions_png",
               "histogram_png", "prepare_plots", "repeats_png", "sweep_png"),
    "_promotion_log": ("append_decision", "read_decisions"),
    "_provenance": ("git_commit", "package_versions"),
    "_shared": ("SHARED_META", "share_decision", "share_manifest", "shared_decisions",
                "shared_manifest"),
    "_tracking": ("SCORE_TAG", "Tracker"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> object:
    if name in _HOME_OF:
        value = getattr(importlib.import_module(f"registry.{_HOME_OF[name]}"), name)
        globals()[name] = value  # later uses do not come back here
        return value
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
    "prepare_plots",
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
