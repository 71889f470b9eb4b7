"""One service for the tests that drive it (starting one takes about 40 s)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.service._harness import Service, running_service


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """`qhybrid serve` on free ports and stores of its own, stopped with Ctrl-C at the end."""
    with running_service(tmp_path_factory.mktemp("service")) as svc:
        yield svc
