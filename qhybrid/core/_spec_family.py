"""The circuit families a spec may name: QAOA for MaxCut, VQE, or a researcher's own circuit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Final, Literal, get_args

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
)

from qhybrid.core._errors import SpecError
from qhybrid.core._results import Direction
from qhybrid.core._spec_model import SpecModel, project_path


class QaoaMaxcutFamily(SpecModel):
    """QAOA for weighted or unweighted MaxCut on a graph read from data."""

    kind: Literal["qaoa-maxcut"] = "qaoa-maxcut"
    baseline_solvers: ClassVar[tuple[str, ...]] = ("brute-force", "one-exchange")
    reps: int = Field(default=1, ge=1, le=8, description="QAOA depth p.")


class VqeFamily(SpecModel):
    """VQE for a qubit Hamiltonian (Pauli sum) read from data."""

    kind: Literal["vqe"] = "vqe"
    baseline_solvers: ClassVar[tuple[str, ...]] = ("exact-diagonalisation",)
    ansatz: Literal["real-amplitudes", "efficient-su2"] = "real-amplitudes"
    reps: int = Field(default=1, ge=1, le=8, description="Ansatz layers.")
    entanglement: Literal["linear", "full", "circular"] = "linear"


PauliTerms = tuple[tuple[str, float], ...]
"""A Pauli sum as (label, real coefficient) terms; labels in Qiskit order (rightmost: qubit 0)."""

ObservableName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]

_RESERVED_METRICS: Final = frozenset({"quality", "optimum", "shots"})

OBSERVABLES_SUFFIXES: Final = (".json", ".yaml", ".yml")
"""The kinds of file ``family.observables_path`` may name."""


class CircuitFamily(SpecModel):
    """A researcher's own circuit: the dataset is its file (OpenQASM 3 ``.qasm`` or QPY
    ``.qpy``); named observables are measured on it, one of them is the objective.

    The observables are given inline (``observables``) or in a file pinned by dvc.lock like
    the dataset (``observables_path``), never both. A family read from a spec with a file
    holds no observables until the application layer reads the file
    (:meth:`with_observables`); only then can a workload be built on it.
    """

    kind: Literal["circuit"] = "circuit"
    baseline_solvers: ClassVar[tuple[str, ...]] = ("exact-diagonalisation",)
    observables: dict[ObservableName, PauliTerms] | None = Field(
        default=None,
        min_length=1,
        description="Name -> Pauli sum as [label, coefficient] terms; labels as wide as the "
        "circuit, in Qiskit order (the rightmost letter acts on qubit 0). Each name is a metric. "
        "Exclusive with observables_path.",
    )
    observables_path: str | None = Field(
        default=None,
        validate_default=True,
        description="A JSON or YAML file of the same mapping (name -> [[label, coefficient], "
        "...]), relative to the project root and pinned by dvc.lock like dataset.path. "
        "Exclusive with observables.",
    )
    objective: str = Field(description="The observable the optimiser and the gates work on.")
    direction: Direction = Field(default="minimise", description="Minimise or maximise it.")
    bounds: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="Box bounds by circuit parameter name; parameters not named get [-pi, pi].",
    )

    @field_validator("observables")
    @classmethod
    def _pauli_sums(cls, value: dict[str, PauliTerms] | None) -> dict[str, PauliTerms] | None:
        for name, terms in (value or {}).items():
            if name in _RESERVED_METRICS:
                raise ValueError(f"'{name}' is a metric of its own; name the observable otherwise")
            if not terms:
                raise ValueError(f"{name}: needs at least one [label, coefficient] term")
            widths = {len(label) for label, _c in terms}
            for label, _c in terms:
                if not label or set(label) - set("IXYZ"):
                    raise ValueError(f"{name}: Pauli label '{label}' is not a string of I, X, Y, Z")
            if len(widths) > 1:
                raise ValueError(f"{name}: labels of different widths {sorted(widths)}")
        return value

    @field_validator("observables_path")
    @classmethod
    def _observables_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Runs on the default too (validate_default), so that a family with neither is refused
        # here, naming this field; "observables" is absent from info.data when it was invalid.
        inline = info.data.get("observables")
        if value is None:
            if "observables" in info.data and inline is None:
                raise ValueError("give the observables inline (observables) or a file of them "
                                 "(observables_path)")
            return None
        if inline is not None:
            raise ValueError("give the observables inline (observables) or in a file "
                             "(observables_path), not both")
        if Path(value).suffix not in OBSERVABLES_SUFFIXES:
            raise ValueError(f"must be a {', '.join(OBSERVABLES_SUFFIXES)} file")
        return project_path(value, field="family.observables_path")

    @field_validator("objective")
    @classmethod
    def _known_objective(cls, value: str, info: ValidationInfo) -> str:
        names = info.data.get("observables")
        if names is not None and value not in names:
            raise ValueError(f"'{value}' is not one of the observables ({', '.join(names)})")
        return value

    @model_serializer(mode="wrap")
    def _one_source_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        # The source not given is left out, so that a spec with inline observables dumps (and
        # hashes: spec_sha256, evidence keys) as it did before observables_path existed.
        data: dict[str, object] = handler(self)
        for key in ("observables", "observables_path"):
            if data.get(key, ...) is None:
                del data[key]
        return data

    def with_observables(self, data: object, *, source: str) -> CircuitFamily:
        """This family with the observables read from its ``observables_path`` file inline
        (the path dropped), checked by the same rules as inline ones.

        Args:
            data: The file's parsed document: name -> [[label, coefficient], ...].
            source: The file, for messages.

        Raises:
            SpecError: Naming ``family.observables_path`` (with the offending entry of the
                file in the message), or ``family.objective`` when the file has no observable
                of that name.
        """
        if not isinstance(data, dict):
            raise SpecError(f"family.observables_path: {source} must be a mapping of observable "
                            "names to [[label, coefficient], ...] terms",
                            field="family.observables_path")
        fields = self.model_dump(exclude={"observables_path"}) | {"observables": data}
        try:
            return CircuitFamily.model_validate(fields)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            first = errors[0]["loc"]
            where = "family.objective" if first and first[0] == "objective" else \
                "family.observables_path"
            lines = [f"{_in_file(e['loc'])}: {e['msg']}" for e in errors]
            raise SpecError(f"{where}: the observables in {source} are invalid\n  "
                            + "\n  ".join(lines), field=where) from exc

    @field_validator("bounds")
    @classmethod
    def _increasing(cls, value: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for name, (low, high) in value.items():
            if not low < high:
                raise ValueError(f"{name}: the lower bound {low} is not below the upper {high}")
        return value


def _in_file(loc: tuple[int | str, ...]) -> str:
    """Where a validation error of :meth:`CircuitFamily.with_observables` lies: inside the file
    (``zz01.0.0``), or at a spec field (``family.objective``)."""
    if loc[:1] == ("observables",):
        return ".".join(str(p) for p in loc[1:]) or "the document"
    return "family." + ".".join(str(p) for p in loc) if loc else "family"


FamilySpec = Annotated[QaoaMaxcutFamily | VqeFamily | CircuitFamily, Field(discriminator="kind")]
"""Every family's options, told apart by ``kind``. A new family adds its model here."""

FAMILY_KINDS: tuple[str, ...] = tuple(
    str(model.model_fields["kind"].default) for model in get_args(get_args(FamilySpec)[0])
)
"""The ``kind`` of every family in :data:`FamilySpec`."""
