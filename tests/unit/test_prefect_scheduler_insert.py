"""Prefect's scheduler can insert scheduled flow runs with the SQLAlchemy installed here.

Prefect 3.8.8 inserts the runs of scheduled deployments (the reaper, the sleep policy, the
nightly data refresh) with one ORM bulk INSERT of FlowRun rows carrying a ``state`` key, which
is a hybrid property of the model, not a column. SQLAlchemy 2.0 leaves such a key out;
SQLAlchemy 2.1 raises "Can't evaluate bulk DML statement" for it, and the scheduler then made
no run at all (seen in the Prefect server's log; pyproject.toml pins sqlalchemy<2.1). This is
that statement, as Prefect's ``_insert_scheduled_flow_runs`` makes it, on an in-memory SQLite.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session


def test_a_bulk_insert_of_scheduled_flow_runs_with_a_state_key_succeeds() -> None:
    from prefect.server.database import orm_models

    flow_run = orm_models.FlowRun
    engine = sa.create_engine("sqlite://")
    flow_run.__table__.create(engine)  # type: ignore[attr-defined]
    runs = [{"id": uuid.uuid4(), "flow_id": uuid.uuid4(), "name": f"scheduled-{n}",
             "state": {"type": "SCHEDULED", "name": "Scheduled"}, "state_type": "SCHEDULED",
             "state_name": "Scheduled", "idempotency_key": f"scheduled {n}"}
            for n in range(3)]
    with Session(engine) as session:
        session.execute(sa.insert(flow_run), runs)  # the scheduler's statement shape
        names = session.execute(sa.select(flow_run.name).order_by(flow_run.name)).scalars()
        assert list(names) == ["scheduled-0", "scheduled-1", "scheduled-2"]
