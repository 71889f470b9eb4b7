"""The promotion log and the run manifests in the shared state store, where a team reads them.

The tables live in the state store's database (created by its migration ``0005``); the caller
hands in that store's engine. The local JSONL log and manifest files stay as mirrors.

- ``qhybrid_promotions``: one row per promotion decision, in the order they were made.
- ``qhybrid_manifests``: one manifest per MLflow run.
"""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy import Column, Engine, Index, Integer, MetaData, String, Table, Text, delete, select
from sqlalchemy.exc import SQLAlchemyError

from qhybrid.core import PromotionLogRecord, RunManifest, TrackingError

SHARED_META = MetaData()

PROMOTIONS = Table(
    "qhybrid_promotions", SHARED_META,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("experiment", String(200), nullable=False),
    Column("mlflow_run_id", String(64), nullable=False),
    Column("record", Text, nullable=False),
    Index("ix_qhybrid_promotions_experiment", "experiment"),
)

MANIFESTS = Table(
    "qhybrid_manifests", SHARED_META,
    Column("mlflow_run_id", String(64), primary_key=True),
    Column("experiment", String(200), nullable=False),
    Column("body", Text, nullable=False),
)


def share_decision(engine: Engine, record: PromotionLogRecord) -> None:
    """Append one decision to the shared promotion log.

    Raises:
        TrackingError: The state store cannot be written.
    """
    try:
        with engine.begin() as conn:
            conn.execute(PROMOTIONS.insert().values(
                experiment=record.experiment, mlflow_run_id=record.mlflow_run_id,
                record=record.model_dump_json()))
    except SQLAlchemyError as exc:
        raise TrackingError(f"cannot append to the shared promotion log: {exc}") from None


def shared_decisions(engine: Engine, experiment: str | None = None) -> list[PromotionLogRecord]:
    """The shared promotion log, oldest first, optionally for one experiment.

    Raises:
        TrackingError: The state store cannot be read, or holds a row that is not a record.
    """
    query = select(PROMOTIONS.c.id, PROMOTIONS.c.record).order_by(PROMOTIONS.c.id)
    if experiment is not None:
        query = query.where(PROMOTIONS.c.experiment == experiment)
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        return [PromotionLogRecord.model_validate_json(row.record) for row in rows]
    except SQLAlchemyError as exc:
        raise TrackingError(f"cannot read the shared promotion log: {exc}") from None
    except ValidationError as exc:
        raise TrackingError(f"the shared promotion log holds a row that is not a promotion "
                            f"record: {exc}") from exc


def share_manifest(engine: Engine, manifest: RunManifest) -> None:
    """Store the manifest of its run (replacing one stored before for that run).

    Raises:
        TrackingError: The manifest has no run id, or the state store cannot be written.
    """
    if manifest.mlflow_run_id is None:
        raise TrackingError("a manifest without an MLflow run id cannot be shared")
    try:
        with engine.begin() as conn:
            conn.execute(delete(MANIFESTS).where(
                MANIFESTS.c.mlflow_run_id == manifest.mlflow_run_id))
            conn.execute(MANIFESTS.insert().values(
                mlflow_run_id=manifest.mlflow_run_id, experiment=manifest.experiment,
                body=manifest.model_dump_json()))
    except SQLAlchemyError as exc:
        raise TrackingError(f"cannot store the manifest of run {manifest.mlflow_run_id}: "
                            f"{exc}") from None


def shared_manifest(engine: Engine, run_id: str) -> RunManifest | None:
    """The manifest stored for ``run_id``, or None.

    Raises:
        TrackingError: The state store cannot be read, or the row is not a manifest.
    """
    try:
        with engine.connect() as conn:
            body = conn.execute(select(MANIFESTS.c.body).where(
                MANIFESTS.c.mlflow_run_id == run_id)).scalar_one_or_none()
        return None if body is None else RunManifest.model_validate_json(body)
    except SQLAlchemyError as exc:
        raise TrackingError(f"cannot read the manifest of run {run_id}: {exc}") from None
    except ValidationError as exc:
        raise TrackingError(f"the stored manifest of run {run_id} is not valid: {exc}") from exc
