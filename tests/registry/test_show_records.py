"""`qhybrid show` of a real promotion prints each gate's criteria (value, op, limit, verdict),
the manifest's data pins and the experiment's promotion log, as the shared records hold them."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from qhybrid_entrypoints import _console
from qhybrid_entrypoints.cli import app
from tests.registry.conftest import Promoted


def test_show_prints_criteria_pins_and_the_promotion_log(
        promoted: Callable[[str], Promoted], monkeypatch: pytest.MonkeyPatch) -> None:
    done = promoted("qaoa-maxcut-small")
    assert done.version is not None
    monkeypatch.setattr(_console.out, "width", 200)

    result = CliRunner().invoke(app, ["show", f"{done.name}@champion"])

    assert result.exit_code == 0, result.output
    text = result.stdout
    for gate in ("ideal", "statistical", "hardware", "baseline"):
        block = re.search(rf"^{gate} criteria:\n((?:  .+\n)+)", text, re.M)
        assert block is not None, text
        for line in block.group(1).splitlines():
            assert re.fullmatch(r"  \S+( \(.+\))? = \S+ (>=|<=|==) \S+  (pass|FAIL)", line), line
    assert re.search(r"^manifest: spec sha256 [0-9a-f]{12}, data data/\S+\.json "
                     r"\(md5 [0-9a-f]{32}\)$", text, re.M), text
    assert re.search(rf"^promotion log:\n  \S+ {done.name} \S+: promoted as version "
                     rf"{done.version}, score ", text, re.M), text
