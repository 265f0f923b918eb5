"""The second half of `make demo`: a preview environment with everything, on local parts.

Expects (set by scripts/demo.sh): PREFECT_API_URL, ENVFORGE_HOME, PGHOST/PGPORT/PGUSER (the
local PostgreSQL), VAULT_ADDR/VAULT_TOKEN (OpenBao), KUBECONFIG (the real
Kubernetes API server Argo CD applies pr-1 to), DEMO_REGISTRY (host:port),
DEMO_BASE_IMAGE and, with a real node, DEMO_POD_PGHOST (where pods reach PostgreSQL). Creates
a "production" database full of personal data, the blocks the template names, a secret in
Vault and an application repository (the Go app of templates/preview-app/app), then starts the
create-environment deployment (run by the worker) for pr-1 with an anonymised clone of
production, and prints what came of it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import hvac
import psycopg
from pydantic import SecretStr

PRODUCTION_SQL = """
DROP DATABASE IF EXISTS shop;
CREATE DATABASE shop;
"""
#: The application's schema is the one preview-app seeds with; production adds people to it.
SCHEMA = Path(__file__).resolve().parents[1] / "templates" / "preview-app" / "db" / "schema.sql"
DATA = """
INSERT INTO public.customers (email, full_name)
SELECT 'customer' || g || '@example.com', 'Customer Number ' || g
FROM generate_series(1, 5000) AS g;
INSERT INTO public.orders (customer_id, total_cents)
SELECT 1 + (g % 5000), (g * 37) % 100000 FROM generate_series(1, 20000) AS g;
"""
#: The demo's application (a static Go web server listing the environment's customers).
APP_SOURCE = Path(__file__).resolve().parents[1] / "templates" / "preview-app" / "app"


def app_binary() -> Path:
    """templates/preview-app/app built once per source version (static, no cgo) with the Go
    toolchain on this machine, cached under ~/.cache/envforge (never in the checkout)."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((APP_SOURCE / name).read_bytes())
    cache = Path(os.environ.get("ENVFORGE_CACHE", Path.home() / ".cache" / "envforge"))
    binary = cache / "demo-app" / f"shop-{digest.hexdigest()[:16]}"
    if not binary.exists():
        if shutil.which("go") is None:
            raise SystemExit("Go is not installed: the demo's application is built from "
                             "templates/preview-app/app with Go 1.26")
        binary.parent.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(".tmp")
        subprocess.run(["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(partial), "."],
                       cwd=APP_SOURCE, check=True,
                       env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"})
        partial.rename(binary)
    return binary


def app_repository(app: Path) -> None:
    """The application's Git repository: the app binary in an image FROM the demo's busybox
    base, running as the non-root user preview-app's Deployment asks for. Committed again
    when the app changed since an earlier demo."""
    app.mkdir(parents=True, exist_ok=True)
    if not (app / ".git").exists():
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=app, check=True)
    (app / "index.html").unlink(missing_ok=True)  # the busybox httpd app of earlier demos
    (app / "Dockerfile").write_text(
        f"FROM {os.environ['DEMO_BASE_IMAGE']}\nCOPY shop /shop\nUSER 10001\n"
        'ENTRYPOINT ["/shop"]\n')
    shutil.copyfile(app_binary(), app / "shop")
    (app / "shop").chmod(0o755)
    subprocess.run(["git", "add", "-A"], cwd=app, check=True)
    if subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=app).returncode != 0:
        subprocess.run(["git", "-c", "user.name=demo", "-c", "user.email=demo@localhost",
                        "commit", "-q", "-m", "shop"], cwd=app, check=True)


def main() -> int:
    home = Path(os.environ["ENVFORGE_HOME"])
    server = dict(host=os.environ["PGHOST"], port=int(os.environ["PGPORT"]),
                  user=os.environ["PGUSER"])
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as conn:  # type: ignore[arg-type]
        for statement in PRODUCTION_SQL.strip().split(";\n"):
            conn.execute(statement.rstrip(";"))
    with psycopg.connect(dbname="shop", autocommit=True, **server) as conn:  # type: ignore[arg-type]
        conn.execute(SCHEMA.read_text())
        conn.execute(DATA)
    print("production database 'shop': 5,000 customers with e-mails and names, 20,000 orders")

    from blocks.database import AnonymisationKey, DatabaseServer

    DatabaseServer(host=server["host"], port=server["port"], user=server["user"]).save(
        "production", overwrite=True)
    AnonymisationKey(key=SecretStr(os.urandom(32).hex())).save(
        "anonymisation-key", overwrite=True)
    hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"]) \
        .secrets.kv.v2.create_or_update_secret(path="preview-app/api",
                                               secret={"key": "demo-api-key-123"},
                                               mount_point="kv")
    app = home / "apps" / "shop"
    app_repository(app)
    print(f"application repository: {app} (templates/preview-app/app, built with Go)")

    from prefect.deployments import run_deployment

    started = time.monotonic()
    run = run_deployment(
        "create-environment/create-environment",
        parameters={"name": "pr-1", "template": "preview-app", "ttl": "48h",
                    "parameters": {"repoUrl": app.as_uri(), "database": "clone",
                                   "imageRegistry": os.environ["DEMO_REGISTRY"],
                                   "registryTls": False,
                                   # the database server as the pods see it: the node's
                                   # gateway with a real node (node.sh expose)
                                   "databaseHost": os.environ.get("DEMO_POD_PGHOST", ""),
                                   "databasePort": server["port"],
                                   "databaseUser": server["user"],
                                   # the app logs in as envforge_pr_1 with a generated
                                   # password (db:role; pg_hba asks the pods for SCRAM)
                                   "databaseLogin": True},
                    "source": {"repository": app.as_uri(), "branch": "main",
                               "pullRequest": 1}},
        timeout=600,
    )
    state = run.state
    print(f"create-environment pr-1: {state.name if state else '?'} "
          f"in {time.monotonic() - started:.1f} s")
    if state is None or not state.is_completed():
        print(f"  {state.message if state else 'no state'}", file=sys.stderr)
        return 1
    with psycopg.connect(dbname="envforge_pr_1", **server) as conn:  # type: ignore[arg-type]
        customers = conn.execute("SELECT count(*) FROM public.customers").fetchone()
        sample = conn.execute("SELECT email, full_name FROM public.customers ORDER BY id "
                              "LIMIT 3").fetchall()
    print(f"database envforge_pr_1: {customers[0] if customers else 0} customers, anonymised, "
          f"e.g. {sample}")
    print_summary("pr-1")
    return 0


def print_summary(name: str) -> None:
    """The run's summary artifact, as the Prefect UI shows it under Artifacts."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"env-{name}"])),
            sort=ArtifactSort.CREATED_DESC, limit=1)
    if artifacts:
        print(f"\n--- summary artifact env-{name} ---\n{artifacts[0].data}")


if __name__ == "__main__":
    sys.exit(main())
