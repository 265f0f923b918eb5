"""How a small clone's tables are shared out over its two copy lanes (no server)."""

from __future__ import annotations

from envforge.db.copy import CopyTask
from envforge.db.small_lanes import TASK_COST_BYTES, split_by_table


def task(table: str, size: int, label: str | None = None) -> CopyTask:
    return CopyTask(table=table, label=label or table, physical_sql=table, columns=("a",),
                    size_bytes=size)


def test_lanes_keep_a_table_together_and_balance_cost() -> None:
    leaves = [task("public.payment", 40_000, f"p{i}") for i in range(14)]
    tasks = [task("public.rental", 1_500_000), *leaves, task("public.film", 200_000),
             task("public.actor", 10_000)]
    mine, theirs = split_by_table(tasks)
    assert sorted(map(id, mine + theirs)) == sorted(map(id, tasks))
    for lane in (mine, theirs):  # each lane in the tasks' own order
        assert [tasks.index(t) for t in lane] == sorted(tasks.index(t) for t in lane)
    payment_lanes = {0 if t in mine else 1 for t in leaves}
    assert len(payment_lanes) == 1
    cost = [sum(t.size_bytes + TASK_COST_BYTES for t in lane) for lane in (mine, theirs)]
    # 14 small leaves cost about what one large table does: they go to different lanes
    assert ({"public.rental", "public.payment"} & {t.table for t in mine}) and \
        ({"public.rental", "public.payment"} & {t.table for t in theirs})
    assert max(cost) < 1.5 * min(cost)
