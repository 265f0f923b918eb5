"""Benchmark: fixed cost on a small real-shaped database, and branch per environment.

    .venv/bin/python bench/db_branch.py --reps 5 --golden-scale 1.0 --write-docs

Two comparisons, each side by side in one run (A and B alternate so drift hits both alike):

1. Pagila-sized database (own Pagila-like schema: 16 tables, a payment table partitioned by
   month with its foreign keys declared on the partitions, domain, enum, arrays, tsvector,
   bytea, a materialized view, triggers; ~45,000 rows): envforge clone, anonymised, against
   ``pg_dump -Fc | pg_restore`` (target: clone / dump-restore <= 1.5).
2. A golden anonymised database of >= 500 MB (bench/db_clone.py's users/orders data, cloned
   with its rules): ``CREATE DATABASE ... TEMPLATE golden STRATEGY FILE_COPY`` (branch) against
   restoring a snapshot of the same data (``pg_restore -j 2``; target: branch / restore <= 0.15).

Starts its own throw-away PostgreSQL (scripts/services/postgres.sh, 127.0.0.1, free port) and
stops it by pid at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from db_clone import (  # type: ignore[import-not-found]  # noqa: E402  (bench/ is on sys.path)
    BENCH_KEY,
    RULES,
    SCRIPT,
    dump_and_restore,
    free_port,
    generate,
    psql,
)

from bench.common import comparison_table, ratio_summary  # noqa: E402
from envforge.db.branch import branch_database, build_golden  # noqa: E402
from envforge.db.clone import CloneRequest, clone_database  # noqa: E402
from envforge.db.connection import ServerAddress  # noqa: E402
from envforge.db.rules import parse_rules  # noqa: E402
from envforge.db.safety import drop_owned_database  # noqa: E402
from envforge.db.schema import pg_tool  # noqa: E402
from envforge.db.snapshot import LocalDirectoryStore, restore_snapshot, take_snapshot  # noqa: E402

PAGILA_LIKE = """
CREATE DOMAIN year AS integer CHECK (VALUE >= 1901 AND VALUE <= 2155);
CREATE TYPE mpaa_rating AS ENUM ('G', 'PG', 'PG-13', 'R', 'NC-17');
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN NEW.last_update = now(); RETURN NEW; END $$;
CREATE TABLE language (language_id serial PRIMARY KEY, name text NOT NULL,
    last_update timestamptz NOT NULL DEFAULT now());
CREATE TABLE category (category_id serial PRIMARY KEY, name text NOT NULL,
    last_update timestamptz NOT NULL DEFAULT now());
CREATE TABLE country (country_id serial PRIMARY KEY, country text NOT NULL,
    last_update timestamptz NOT NULL DEFAULT now());
CREATE TABLE city (city_id serial PRIMARY KEY, city text NOT NULL,
    country_id int NOT NULL REFERENCES country, last_update timestamptz NOT NULL DEFAULT now());
CREATE TABLE address (address_id serial PRIMARY KEY, address text NOT NULL, address2 text,
    district text NOT NULL, city_id int NOT NULL REFERENCES city, postal_code text,
    phone text NOT NULL, last_update timestamptz NOT NULL DEFAULT now());
CREATE TABLE actor (actor_id serial PRIMARY KEY, first_name text NOT NULL,
    last_name text NOT NULL, last_update timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON actor (last_name);
CREATE TABLE film (film_id serial PRIMARY KEY, title text NOT NULL, description text,
    release_year year, language_id int NOT NULL REFERENCES language,
    rental_duration smallint NOT NULL DEFAULT 3, rental_rate numeric(4,2) NOT NULL DEFAULT 4.99,
    length smallint, rating mpaa_rating DEFAULT 'G', special_features text[],
    fulltext tsvector NOT NULL, last_update timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON film USING gist (fulltext);
CREATE TABLE film_actor (actor_id int NOT NULL REFERENCES actor, film_id int NOT NULL
    REFERENCES film, last_update timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor_id, film_id));
CREATE TABLE film_category (film_id int NOT NULL REFERENCES film, category_id int NOT NULL
    REFERENCES category, last_update timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (film_id, category_id));
CREATE TABLE staff (staff_id serial PRIMARY KEY, first_name text NOT NULL,
    last_name text NOT NULL, address_id int NOT NULL REFERENCES address, email text,
    store_id int NOT NULL, active boolean NOT NULL DEFAULT true, username text NOT NULL,
    password text, picture bytea, last_update timestamptz NOT NULL DEFAULT now());
CREATE TABLE store (store_id serial PRIMARY KEY, manager_staff_id int NOT NULL
    REFERENCES staff, address_id int NOT NULL REFERENCES address,
    last_update timestamptz NOT NULL DEFAULT now());
CREATE TABLE customer (customer_id serial PRIMARY KEY, store_id int NOT NULL REFERENCES store,
    first_name text NOT NULL, last_name text NOT NULL, email text, address_id int NOT NULL
    REFERENCES address, activebool boolean NOT NULL DEFAULT true,
    create_date date NOT NULL DEFAULT current_date, active int,
    last_update timestamptz DEFAULT now());
CREATE TABLE inventory (inventory_id serial PRIMARY KEY, film_id int NOT NULL REFERENCES film,
    store_id int NOT NULL REFERENCES store, last_update timestamptz NOT NULL DEFAULT now());
CREATE TABLE rental (rental_id serial PRIMARY KEY, rental_date timestamptz NOT NULL,
    inventory_id int NOT NULL REFERENCES inventory, customer_id int NOT NULL
    REFERENCES customer, return_date timestamptz, staff_id int NOT NULL REFERENCES staff,
    last_update timestamptz NOT NULL DEFAULT now());
CREATE TABLE payment (payment_id serial, customer_id int NOT NULL, staff_id int NOT NULL,
    rental_id int NOT NULL, amount numeric(5,2) NOT NULL, payment_date timestamptz NOT NULL,
    PRIMARY KEY (payment_date, payment_id)) PARTITION BY RANGE (payment_date);
DO $$ DECLARE m date; p text; BEGIN
    FOR i IN 0..23 LOOP
        m := date '2022-01-01' + make_interval(months => i);
        p := 'payment_p' || to_char(m, 'YYYY_MM');
        EXECUTE format('CREATE TABLE %I PARTITION OF payment FOR VALUES FROM (%L) TO (%L)',
                       p, m, m + interval '1 month');
        EXECUTE format('ALTER TABLE %I ADD FOREIGN KEY (customer_id) REFERENCES customer', p);
        EXECUTE format('ALTER TABLE %I ADD FOREIGN KEY (rental_id) REFERENCES rental', p);
        EXECUTE format('ALTER TABLE %I ADD FOREIGN KEY (staff_id) REFERENCES staff', p);
    END LOOP; END $$;
CREATE TRIGGER touch BEFORE UPDATE ON customer FOR EACH ROW EXECUTE FUNCTION touch();
CREATE TRIGGER touch BEFORE UPDATE ON film FOR EACH ROW EXECUTE FUNCTION touch();

SET session_replication_role = replica;
INSERT INTO language (name) SELECT unnest(ARRAY['English', 'Italian', 'Japanese', 'Mandarin',
                                                'French', 'German']);
INSERT INTO category (name) SELECT 'Category ' || g FROM generate_series(1, 16) g;
INSERT INTO country (country) SELECT 'Country ' || g FROM generate_series(1, 109) g;
INSERT INTO city (city, country_id) SELECT 'City ' || g, 1 + g % 109
    FROM generate_series(1, 600) g;
INSERT INTO address (address, address2, district, city_id, postal_code, phone)
SELECT g || ' ' || (ARRAY['Main', 'Oak', 'Pine', 'Elm'])[1 + g % 4] || ' Street',
       CASE WHEN g % 5 = 0 THEN NULL ELSE '' END, 'District ' || g % 50, 1 + g % 600,
       lpad((g * 37 % 99999)::text, 5, '0'), '+1 ' || lpad((g * 7919 % 1000000000)::text, 10, '0')
FROM generate_series(1, 603) g;
INSERT INTO actor (first_name, last_name)
SELECT (ARRAY['PENELOPE', 'NICK', 'ED', 'JENNIFER', 'JOHNNY', 'BETTE'])[1 + g % 6],
       (ARRAY['GUINESS', 'WAHLBERG', 'CHASE', 'DAVIS', 'BERRY'])[1 + g % 5]
FROM generate_series(1, 200) g;
INSERT INTO film (title, description, release_year, language_id, length, rating,
                  special_features, fulltext)
SELECT 'FILM TITLE ' || g, 'A Epic Drama of a Feminist And a Mad Scientist ' || g,
       2000 + g % 20, 1 + g % 6, 46 + g % 140,
       (ARRAY['G', 'PG', 'PG-13', 'R', 'NC-17']::mpaa_rating[])[1 + g % 5],
       ARRAY['Trailers', 'Deleted Scenes'], to_tsvector('english', 'epic drama feminist ' || g)
FROM generate_series(1, 1000) g;
INSERT INTO film_actor (actor_id, film_id)
SELECT DISTINCT 1 + (g * 13) % 200, 1 + g % 1000 FROM generate_series(1, 5462) g;
INSERT INTO film_category (film_id, category_id) SELECT g, 1 + g % 16
    FROM generate_series(1, 1000) g;
INSERT INTO staff (first_name, last_name, address_id, email, store_id, username, password,
                   picture)
SELECT 'Staff' || g, 'Member', g, 'staff' || g || '@store.test', 1 + g % 2, 'staff' || g,
       md5('pw' || g), decode('89504e470d0a1a0a' || repeat('00', 30000), 'hex')
FROM generate_series(1, 2) g;
INSERT INTO store (manager_staff_id, address_id) VALUES (1, 1), (2, 2);
INSERT INTO customer (store_id, first_name, last_name, email, address_id, active)
SELECT 1 + g % 2, (ARRAY['MARY', 'PATRICIA', 'LINDA', 'BARBARA', 'ELIZABETH'])[1 + g % 5],
       (ARRAY['SMITH', 'JOHNSON', 'WILLIAMS', 'JONES'])[1 + g % 4],
       'customer' || g || '@shop.test', 3 + g % 600, 1
FROM generate_series(1, 599) g;
INSERT INTO inventory (film_id, store_id) SELECT 1 + g % 1000, 1 + g % 2
    FROM generate_series(1, 4581) g;
INSERT INTO rental (rental_date, inventory_id, customer_id, return_date, staff_id)
SELECT timestamptz '2022-01-01' + g * interval '1 hour', 1 + g % 4581, 1 + g % 599,
       timestamptz '2022-01-03' + g * interval '1 hour', 1 + g % 2
FROM generate_series(1, 16044) g;
INSERT INTO payment (customer_id, staff_id, rental_id, amount, payment_date)
SELECT 1 + g % 599, 1 + g % 2, g, (g % 1000) / 100.0,
       timestamptz '2022-01-01' + g * interval '1 hour'
FROM generate_series(1, 16044) g;
SET session_replication_role = origin;
CREATE MATERIALIZED VIEW sales_by_film AS
    SELECT i.film_id, sum(p.amount) AS total FROM payment p JOIN rental r USING (rental_id)
    JOIN inventory i USING (inventory_id) GROUP BY i.film_id;
CREATE VIEW customer_list AS SELECT customer_id, first_name || ' ' || last_name AS name, email
    FROM customer;
"""
PAGILA_RULES: dict[str, Any] = {"tables": {
    "actor": {"first_name": "first_name", "last_name": "last_name"},
    "address": {"address": "address", "address2": "address", "postal_code": "postal_code",
                "phone": "phone"},
    "city": {"city": "city"},
    "customer": {"first_name": "first_name", "last_name": "last_name", "email": "email"},
    "staff": {"first_name": "first_name", "last_name": "last_name", "email": "email",
              "username": "username", "password": "hash", "picture": "null"},
}}


def make_pagila_like(server: ServerAddress, name: str) -> dict[str, float]:
    psql(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    psql(server, f'CREATE DATABASE "{name}"')
    subprocess.run([pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                    f"--dbname={server.with_database(name).conninfo()}"],
                   input=PAGILA_LIKE, text=True, check=True, stdout=subprocess.DEVNULL)
    psql(server, "VACUUM ANALYZE", name)
    rows = int(psql(server, "SELECT sum(n_live_tup) FROM pg_stat_user_tables", name))
    return {"rows": rows, "db_mb": int(psql(server, f"SELECT pg_database_size('{name}')")) / 1e6}


def plain_copy_into_new_database(server: ServerAddress, source: str, target: str) -> float:
    """A, timed like B: create the database, then ``pg_dump -Fc | pg_restore`` into it (B's
    time includes creating its target too)."""
    psql(server, f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
    started = time.perf_counter()
    psql(server, f'CREATE DATABASE "{target}"')
    return time.perf_counter() - started + float(dump_and_restore(server, source, target))


def timed_clone(server: ServerAddress, source: str, target: str, rules: dict[str, Any],
                jobs: int) -> float:
    drop_owned_database(server, target)
    started = time.perf_counter()
    clone_database(CloneRequest(server.with_database(source), server.with_database(target),
                                parse_rules(rules), BENCH_KEY, jobs=jobs))
    return time.perf_counter() - started


def bench(server: ServerAddress, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"load": [os.getloadavg()[0]]}
    out["pagila"] = make_pagila_like(server, "pagila_like")
    a, b = [], []
    for rep in range(args.reps):
        a.append(plain_copy_into_new_database(server, "pagila_like", "pagila_plain"))
        b.append(timed_clone(server, "pagila_like", "envforge_pagila", PAGILA_RULES, args.jobs))
        print(f"pagila rep {rep + 1}: A {a[-1]:.2f} s, B {b[-1]:.2f} s", flush=True)
    out["pagila_a"], out["pagila_b"] = a, b
    if args.golden_scale <= 0:
        return out
    print(f"generating users/orders at scale {args.golden_scale} ...", flush=True)
    out["golden_source"] = generate(server, "golden_src", args.golden_scale)
    golden = server.with_database("envforge_golden_bench")
    report = build_golden(CloneRequest(server.with_database("golden_src"), golden,
                                       parse_rules(RULES), BENCH_KEY, jobs=args.jobs), keep=0)
    out["golden_build"] = report.seconds
    out["golden_mb"] = int(psql(server, "SELECT pg_database_size('envforge_golden_bench')")) / 1e6
    # The snapshot holds the same rows (taken from a branch: goldens refuse connections).
    branch_database(server, golden.dbname, "envforge_branch_src", {"environment": "bench"})
    store = LocalDirectoryStore(workdir / "snapshots")
    take_snapshot(server, "envforge_branch_src", store, "golden")
    restores, branches = [], []
    for rep in range(args.reps):
        drop_owned_database(server, "envforge_restored")
        restores.append(restore_snapshot(store, "golden", server.with_database(
            "envforge_restored"), {"environment": "bench"}, jobs=args.jobs))
        drop_owned_database(server, "envforge_branched")
        branches.append(branch_database(server, golden.dbname, "envforge_branched",
                                        {"environment": "bench"}))
        print(f"golden rep {rep + 1}: restore {restores[-1]:.2f} s, branch {branches[-1]:.2f} s",
              flush=True)
    out["restore"], out["branch"] = restores, branches
    out["load"].append(os.getloadavg()[0])
    return out


def render(r: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"Command: `.venv/bin/python bench/db_branch.py --reps {args.reps} --golden-scale "
        f"{args.golden_scale} --jobs {args.jobs}` (2 cores shared with other work, PostgreSQL "
        "15, fsync off on the throw-away cluster for every side).",
        "",
        f"Pagila-like source: {r['pagila']['rows']:,} rows, {r['pagila']['db_mb']:.0f} MB "
        "database (16 tables, payment partitioned by month with partition-level foreign keys, "
        "a materialized view, bytea, domain, enum, arrays, tsvector).",
        "",
        *comparison_table("Pagila-sized", [
            ("A: CREATE DATABASE, then pg_dump -Fc \\| pg_restore into it", r["pagila_a"]),
            ("B: envforge clone, anonymised (subset off; creates its database)",
             r["pagila_b"])]),
        "",
        f"- {ratio_summary(r['pagila_a'], r['pagila_b'], '<= 1.5')}",
    ]
    if "branch" in r:
        lines += [
            "",
            f"Golden: {r['golden_source']['rows']:,} rows cloned with bench/db_clone.py's "
            f"rules into envforge_golden_bench ({r['golden_mb']:.0f} MB database, built and "
            f"swapped in {r['golden_build']:.1f} s).",
            "",
            *comparison_table("per environment", [
                (f"A: restore of a snapshot of the golden's data (pg_restore -j {args.jobs})",
                 r["restore"]),
                ("B: branch: CREATE DATABASE ... TEMPLATE golden STRATEGY FILE_COPY",
                 r["branch"])]),
            "",
            f"- {ratio_summary(r['restore'], r['branch'], '<= 0.15', 3)}; the first branch "
            "after a build pays the checkpoint FILE_COPY starts with (the build's dirty pages)",
        ]
    lines.append(f"- 1-minute load average {r['load'][0]:.1f} at the start and "
                 f"{r['load'][-1]:.1f} at the end")
    return "\n".join(lines)


def write_docs(report: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    start, end = "<!-- db-branch:start -->", "<!-- db-branch:end -->"
    section = f"{start}\n## Databases: fixed cost (Pagila-sized) and branch per environment\n\n" \
              f"{report}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if start in text and end in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--golden-scale", type=float, default=1.0,
                        help="users/orders scale of the golden (1.0: ~630 MB); 0 skips it")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="envforge-bench-branch-"))
    pgdir = tempfile.mkdtemp(prefix="envforge-bench-pg-")  # chowned to postgres by the script
    port = free_port()
    subprocess.run(["bash", str(SCRIPT), "start", pgdir, str(port)], check=True,
                   stdout=subprocess.DEVNULL)
    server = ServerAddress("127.0.0.1", port)
    try:
        results = bench(server, args, workdir)
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", pgdir], check=False)
        shutil.rmtree(pgdir, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
    report = render(results, args)
    print(report)
    if args.write_docs:
        write_docs(report)


if __name__ == "__main__":
    main()
