"""The system of record: MLflow runs and registry, the promotion log, DVC pins, manifests.

Never imports qiskit: circuits arrive here as files and hashes.
"""

from registry._dvc import DataPin, file_md5, pin_inputs
from registry._manifest import read_manifest, write_manifest
from registry._plots import convergence_png, histogram_png
from registry._promotion_log import append_decision, read_decisions
from registry._provenance import git_commit, package_versions
from registry._tracking import SCORE_TAG, Tracker

__all__ = [
    "SCORE_TAG",
    "DataPin",
    "Tracker",
    "append_decision",
    "convergence_png",
    "file_md5",
    "git_commit",
    "histogram_png",
    "package_versions",
    "pin_inputs",
    "read_decisions",
    "read_manifest",
    "write_manifest",
]
