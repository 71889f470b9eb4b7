"""The job API's OpenAPI document, as published in docs/.

``python -m qhybrid_entrypoints.openapi docs/openapi.json`` writes it (sorted keys, two-space
indent); ``--check`` compares instead and exits 1 when the file is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from qhybrid.core import Settings


def document() -> dict[str, object]:
    """The OpenAPI document of :func:`qhybrid_entrypoints.api.create_app`."""
    from qhybrid_entrypoints.api import create_app

    with tempfile.TemporaryDirectory() as folder:  # the app opens a store; a throwaway one
        app = create_app(Settings(project_root=Path(folder),
                                  state_url=f"sqlite:///{folder}/state.db"))
        return app.openapi()


def render() -> str:
    """The document as written to disk."""
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write or check the published document."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", type=Path)
    parser.add_argument("--check", action="store_true", help="compare; exit 1 if stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.path.read_text() if args.path.exists() else ""
        if current != text:
            print(f"{args.path} is stale: run `make schema`", file=sys.stderr)
            return 1
        return 0
    args.path.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
