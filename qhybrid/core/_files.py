"""Writing files that others read while they may be rewritten (data, manifests, plans)."""

from __future__ import annotations

import os
from pathlib import Path


def write_whole(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path``, its folder created, through a temporary file beside
    it: a reader sees the old file or the new one, never a partial one, and a failed write
    leaves the old one in place.

    Raises:
        OSError: The folder or the file cannot be written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
