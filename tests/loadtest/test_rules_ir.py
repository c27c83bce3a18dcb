"""loadtest.rules_ir without valgrind: the pickle it prepares holds bench_rules' warmed states and
timed events, the timed loop runs for a part, an unknown part is refused by name."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from loadtest import rules_ir
from services.rules import state as st


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ir") / "ir.pkl"
    rules_ir.prepare(str(path))
    return path


def test_the_pickle_holds_warmed_states_and_the_timed_events(prepared: Path) -> None:
    frozen, timed = pickle.loads(prepared.read_bytes())
    assert len(frozen) > rules_ir.PATIENTS // 2 and all(isinstance(b, bytes) for b in frozen.values())
    assert any(st.loads(b) for b in frozen.values())  # warmed: states carry history
    assert timed and {pid for pid, _ in timed} <= set(range(rules_ir.PATIENTS))


@pytest.mark.parametrize("part", ["R19", "apply"])
def test_the_timed_loop_runs_for_a_part(prepared: Path, part: str) -> None:
    rules_ir.run(str(prepared), part)  # no valgrind: the loop itself, as count runs it


def test_an_unknown_part_is_refused_by_name(prepared: Path) -> None:
    with pytest.raises(SystemExit, match="unknown part 'R99'"):
        rules_ir.run(str(prepared), "R99")
