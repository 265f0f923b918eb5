"""How a small clone's post-data section is cut for two sessions, and its tables for two lanes
(no server: the section text is pg_restore's own format, written out here)."""

from __future__ import annotations

from envforge.db.copy import CopyTask
from envforge.db.post_data import partition_families, share_out, split_section
from envforge.db.small_lanes import TASK_COST_BYTES, split_by_table

PREAMBLE = """--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);
SET client_min_messages = warning;
"""


def entry(name: str, kind: str, body: str) -> str:
    return f"--\n-- Name: {name}; Type: {kind}; Schema: public; Owner: -\n--\n\n{body}\n\n\n"


SECTION = PREAMBLE + "".join([
    entry("actor actor_pkey", "CONSTRAINT",
          "ALTER TABLE ONLY public.actor\n    ADD CONSTRAINT actor_pkey PRIMARY KEY (id);"),
    entry("payment payment_pkey", "CONSTRAINT",
          "ALTER TABLE ONLY public.payment\n    ADD CONSTRAINT payment_pkey PRIMARY KEY (id);"),
    entry("payment_p1 payment_p1_pkey", "CONSTRAINT",
          "ALTER TABLE ONLY public.payment_p1\n"
          "    ADD CONSTRAINT payment_p1_pkey PRIMARY KEY (id);"),
    "SET default_tablespace = '';\n\n",
    entry("film_idx", "INDEX", "CREATE INDEX film_idx ON public.film USING btree (title);"),
    entry("payment_p1_pkey", "INDEX ATTACH",
          "ALTER INDEX public.payment_pkey ATTACH PARTITION public.payment_p1_pkey;"),
    entry("film film_actor_fkey", "FK CONSTRAINT",
          "ALTER TABLE ONLY public.film\n    ADD CONSTRAINT film_actor_fkey FOREIGN KEY "
          "(actor_id) REFERENCES public.actor(id);"),
    entry("payment_p1 p1_actor_fkey", "FK CONSTRAINT",
          "ALTER TABLE ONLY public.payment_p1\n    ADD CONSTRAINT p1_actor_fkey FOREIGN KEY "
          "(actor_id) REFERENCES public.actor(id);"),
    entry('"Odd" odd_fkey', "FK CONSTRAINT",
          'ALTER TABLE ONLY public."Odd"\n    ADD CONSTRAINT odd_fkey FOREIGN KEY '
          "(film_id) REFERENCES public.film(id);"),
])
FAMILIES = partition_families({"public.payment": ["public.payment_p1", "public.payment_p2"]})


def test_the_section_is_cut_into_its_entries_with_the_tables_they_lock() -> None:
    cut = split_section(SECTION, FAMILIES)
    assert cut is not None
    preamble, entries = cut
    assert "set_config('search_path'" in preamble and "ADD CONSTRAINT" not in preamble
    assert [(e.kind, e.parallel) for e in entries] == [
        ("CONSTRAINT", "build"), ("CONSTRAINT", "build"), ("CONSTRAINT", "build"),
        ("INDEX", "build"), ("INDEX ATTACH", None), ("FK CONSTRAINT", "fk"),
        ("FK CONSTRAINT", "fk"), ("FK CONSTRAINT", None)]
    assert entries[0].tables == {"public.actor"}
    # a partition or its parent locks the whole tree: they never run beside each other
    family = {"public.payment", "public.payment_p1", "public.payment_p2"}
    assert entries[1].tables == entries[2].tables == family
    assert entries[5].tables == {"public.film", "public.actor"}
    assert entries[6].tables == family | {"public.actor"}
    # a quoted name is not parsed: that entry runs alone, in order
    assert entries[7].tables is None
    # every statement is kept, each once, in the dump's order
    assert "".join(e.sql for e in entries).count("ALTER TABLE ONLY") == 6


def test_a_setting_between_entries_keeps_the_section_whole() -> None:
    changed = SECTION.replace("SET default_tablespace = '';", "SET default_tablespace = fast;")
    assert split_section(changed, FAMILIES) is None
    assert split_section(PREAMBLE, FAMILIES) is None  # no entry at all
    meta = SECTION.replace("SET default_tablespace = '';", "\\connect other")
    assert split_section(meta, FAMILIES) is None


def test_shares_never_lock_a_table_in_common() -> None:
    cut = split_section(SECTION, FAMILIES)
    assert cut is not None
    builds = [e for e in cut[1] if e.parallel == "build"]
    first, second = share_out(builds)
    assert sorted(map(id, first + second)) == sorted(map(id, builds))
    assert first and second
    locked = [set().union(*(e.tables or () for e in share)) for share in (first, second)]
    assert not locked[0] & locked[1]
    # the two payment constraints (one tree) are in the same share, in the dump's order
    payment = [share for share in (first, second) if any("payment" in e.sql for e in share)]
    assert len(payment) == 1
    assert ["payment_p1_pkey PRIMARY" in e.sql for e in payment[0] if "payment" in e.sql] \
        == [False, True]
    # foreign keys through one referenced table form one share: nothing runs beside them
    fks = [e for e in cut[1] if e.parallel == "fk"]
    assert share_out(fks)[1] == []


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
