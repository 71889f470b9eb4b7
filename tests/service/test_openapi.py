"""The published OpenAPI document is the API's own."""

from __future__ import annotations

from pathlib import Path

from qhybrid_entrypoints import openapi

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_the_published_openapi_document_is_current() -> None:
    assert DOC.read_text() == openapi.render(), "run `make schema`"


def test_every_job_route_documents_its_problem_documents() -> None:
    document = openapi.document()
    paths = document["paths"]
    assert isinstance(paths, dict)
    for route, methods in paths.items():
        for method, operation in methods.items():
            if route.startswith("/v1/jobs/{job_id}"):
                assert "404" in operation["responses"], (method, route)
    assert "409" in paths["/v1/jobs"]["post"]["responses"]
