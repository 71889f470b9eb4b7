"""Deterministic observables files for the bundled ``kind: circuit`` examples, run by dvc.yaml.

``qhybrid data ghz-observables --qubits 3 --out data/ghz_3_observables.json`` writes the
observables a spec names in ``family.observables_path``: JSON, as a spec would give them
inline (name -> [[label, coefficient], ...]).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from qhybrid.core import write_whole


def ghz_observables(qubits: int) -> dict[str, list[list[str | float]]]:
    """The GHZ state's parities as named Pauli sums, labels in Qiskit order (the rightmost
    letter acts on qubit 0): ``zz<i><j>`` = Z_i Z_j for every pair (nearest neighbours first;
    ``zz<i>_<j>`` above 10 qubits, where digits would run together), each +1 on the state;
    ``xxx`` = X on every qubit, the coherence, +1; and ``mean_zz``, the mean of the pairs.

    Raises:
        ValueError: Fewer than 2 qubits.
    """
    if qubits < 2:
        raise ValueError(f"a GHZ state needs at least 2 qubits, not {qubits}")
    pairs = sorted(itertools.combinations(range(qubits), 2), key=lambda p: (p[1] - p[0], p[0]))
    separator = "" if qubits <= 10 else "_"

    def label(ones: tuple[int, ...], letter: str) -> str:
        return "".join(letter if q in ones else "I" for q in reversed(range(qubits)))

    parities: dict[str, list[list[str | float]]] = {
        f"zz{i}{separator}{j}": [[label((i, j), "Z"), 1.0]] for i, j in pairs}
    return parities | {
        "xxx": [[label(tuple(range(qubits)), "X"), 1.0]],
        "mean_zz": [[label(pair, "Z"), 1.0 / len(pairs)] for pair in pairs],
    }


def write_observables(observables: dict[str, list[list[str | float]]], out: Path) -> None:
    """Write named observables as JSON (one term a line; keys in their given order, so the
    same observables give the same bytes), atomically."""
    lines = [f"  {json.dumps(name)}: [{', '.join(json.dumps(t) for t in terms)}]"
             for name, terms in observables.items()]
    write_whole(out, "{\n" + ",\n".join(lines) + "\n}\n")
