"""Files written whole: a reader never sees half of one."""

from __future__ import annotations

from pathlib import Path

import pytest

from qhybrid.core import write_whole


def test_a_write_that_fails_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "plan.json"
    assert write_whole(path, '{"chunk_size": 64}') == path  # its folder made
    with pytest.raises(UnicodeEncodeError):
        write_whole(path, '{"reason": "\ud800"}')  # fails while the new text is written
    assert path.read_text() == '{"chunk_size": 64}'
    write_whole(path, '{"chunk_size": 128}')
    assert path.read_text() == '{"chunk_size": 128}'
    assert [p.name for p in path.parent.iterdir()] == ["plan.json"]  # the next write took it
