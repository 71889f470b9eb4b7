"""Facts about the environment a run executed in: git commit and package versions."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "qhybrid", "qiskit", "qiskit-aer", "qiskit-ibm-runtime", "prefect", "mlflow", "dvc",
    "mthree", "numpy", "scipy", "networkx", "pydantic",
)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape a run's results."""
    versions: dict[str, str] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(root: Path) -> str | None:
    """The commit checked out at ``root`` (with ``-dirty`` when the tree has changes), if any."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],  # noqa: S607 - git from PATH
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],  # noqa: S607 - git from PATH
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head
