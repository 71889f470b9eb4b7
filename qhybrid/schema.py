"""JSON Schema for qhybrid's wire contracts, generated from the pydantic models.

``python -m qhybrid.schema docs/schema`` writes one ``<name>.schema.json`` per contract
(sorted keys, two-space indent, trailing newline), so the checked-in files change only when
a model changes. ``--check`` compares instead of writing and exits 1 when a file is stale.

Imports only :mod:`qhybrid.core` and the standard library.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import BaseModel

from qhybrid import core

# pydantic emits Draft 2020-12 schemas but does not name the dialect.
_DIALECT = "https://json-schema.org/draft/2020-12/schema"

CONTRACTS: tuple[type[BaseModel], ...] = (
    core.ErrorReport,
    core.EvaluateJobRequest,
    core.ExperimentSpec,
    core.ExperimentsReport,
    core.JobPage,
    core.JobRecord,
    core.JobResult,
    core.LeasesReport,
    core.ProblemDocument,
    core.PromoteJobRequest,
    core.PromotionLogRecord,
    core.ReplayReport,
    core.RunJobRequest,
    core.RunManifest,
    core.RunOptions,
    core.RunReport,
    core.ShowReport,
    core.SweepJobRequest,
    core.SweepReport,
)
"""Every wire contract: what the CLI prints with --json, reads from disk, or a flow takes, and
what the job API takes and answers (its whole OpenAPI document is docs/openapi.json)."""


def schemas() -> dict[str, dict[str, object]]:
    """JSON Schema of every wire contract, keyed by file stem.

    Schemas are generated in pydantic's validation mode: they describe what qhybrid accepts
    when it reads a spec YAML, a manifest or a promotion-log line back.

    Returns:
        A mapping from the lower-cased model name (e.g. ``experimentspec``) to its schema.
    """
    out: dict[str, dict[str, object]] = {}
    for model in CONTRACTS:
        schema = {"$schema": _DIALECT, **model.model_json_schema(mode="validation")}
        out[model.__name__.lower()] = schema
    return out


def render(schema: dict[str, object]) -> str:
    """A schema as the text written to disk: sorted keys, indent 2, trailing newline.

    Args:
        schema: A JSON Schema document.

    Returns:
        The canonical text of ``schema``.
    """
    return json.dumps(schema, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def write_schemas(folder: Path) -> list[Path]:
    """Write ``<name>.schema.json`` for every contract into ``folder``.

    Args:
        folder: Target folder; created if missing.

    Returns:
        The paths written, sorted.

    Raises:
        OSError: The folder or a file cannot be written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, schema in sorted(schemas().items()):
        path = folder / f"{name}.schema.json"
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


def stale_schemas(folder: Path) -> list[Path]:
    """Schema files in ``folder`` that are missing or differ from the models.

    Args:
        folder: The folder holding the checked-in schemas.

    Returns:
        The paths that ``write_schemas`` would create or change, sorted.
    """
    stale: list[Path] = []
    for name, schema in sorted(schemas().items()):
        path = folder / f"{name}.schema.json"
        if not path.is_file() or path.read_text(encoding="utf-8") != render(schema):
            stale.append(path)
    return stale


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        0 on success; 1 when ``--check`` finds stale files.
    """
    parser = argparse.ArgumentParser(
        prog="python -m qhybrid.schema",
        description="Write JSON Schema for qhybrid's contracts, generated from the models.",
    )
    parser.add_argument("folder", type=Path, help="output folder, e.g. docs/schema")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any file is stale"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_schemas(args.folder)
        for path in stale:
            print(f"stale: {path}", file=sys.stderr)
        return 1 if stale else 0
    for path in write_schemas(args.folder):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
