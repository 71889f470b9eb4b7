"""docs/schema is generated from the contracts and must match them."""

from __future__ import annotations

from pathlib import Path

from qhybrid.schema import schemas, stale_schemas

DOCS = Path(__file__).resolve().parents[2] / "docs" / "schema"


def test_checked_in_schemas_are_current() -> None:
    assert stale_schemas(DOCS) == [], "run `make schema` and commit docs/schema"


def test_every_wire_contract_has_a_schema_version() -> None:
    for name, schema in schemas().items():
        assert "schema_version" in schema["properties"], name
