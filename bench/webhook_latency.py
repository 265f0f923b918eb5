"""Benchmark: signed "opened" webhook -> environment committed in Git, with the process worker.

    .venv/bin/python bench/webhook_latency.py --reps 5 --write-docs

Everything real, on 127.0.0.1: a Prefect server (`prefect server start`, its own PREFECT_HOME),
the create-environment deployment from prefect.yaml on a process work pool, a process worker
(`prefect worker start --type process`), envforge's webhook server, and a bare GitOps
repository. Each delivery opens a new pull request of a repository mapped to python-service (no
image build); the clock stops when `environments/pr-<n>/` is on the remote's main branch. Four
setups side by side: Prefect's defaults (10 s poll; a workspace supervisor process, then
`python -m prefect.engine`), a 1 s poll, envforge's flow-run command (envforge.launch.flow_start)
starting cold, and that command handing the run to a warm runner (envforge.launch.warm_runner), as
scripts/prefect-local.sh runs it. Split per delivery: answer (202), flow run created -> running
(worker poll, process start, imports), running -> committed (the flow). Processes are stopped
by pid.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.common import median, write_docs_section  # noqa: E402
from tests.helpers import start_warm_runner  # noqa: E402

SECRET = "bench-secret"
POOL = "envforge-process"  # the pool prefect.yaml's deployments name
MAX_REPS = 20
COMMIT_TIMEOUT_S = 90.0
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def git(*args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def gitops_remote(tmp: Path) -> Path:
    """A bare GitOps repository with a first commit, as the platform sets one up."""
    bare = tmp / "gitops.git"
    git("init", "--quiet", "--bare", "-b", "main", str(bare))
    seed = tmp / "seed"
    git("clone", "--quiet", str(bare), str(seed))
    (seed / "argocd").mkdir()
    (seed / "argocd" / "README.md").write_text("Argo CD Applications\n")
    git("add", "-A", cwd=seed)
    git("commit", "--quiet", "-m", "initial", cwd=seed)
    git("push", "--quiet", "origin", "HEAD:main", cwd=seed)
    return bare


def committed(bare: Path, name: str) -> bool:
    done = subprocess.run(["git", "--git-dir", str(bare), "ls-tree", "--name-only", "main",
                           f"environments/{name}/"], capture_output=True, text=True)
    return bool(done.stdout.strip())


class Prefect:
    """A Prefect server and workers started by this script, stopped by pid."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        port = free_port()
        self.env = {**os.environ, "PREFECT_HOME": str(tmp / "prefect"),
                    "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                    "ENVFORGE_PROJECT_DIR": str(ROOT)}
        self.server = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
             str(port)], env=self.env, stdout=(tmp / "server.log").open("w"),
            stderr=subprocess.STDOUT)
        self.worker: subprocess.Popen[bytes] | None = None
        self.warm: subprocess.Popen[bytes] | None = None
        import httpx

        for _ in range(180):
            try:
                if httpx.get(f"{self.env['PREFECT_API_URL']}/health", timeout=2).is_success:
                    return
            except httpx.TransportError:
                pass
            if self.server.poll() is not None:
                break
            time.sleep(0.5)
        raise RuntimeError(f"the Prefect server did not start; see {tmp / 'server.log'}")

    def cli(self, *args: str) -> None:
        subprocess.run([str(BIN / "prefect"), "--no-prompt", *args], env=self.env, cwd=ROOT,
                       check=True, capture_output=True)

    def start_worker(self, extra_env: dict[str, str], log: Path, warm: bool) -> None:
        """A process worker (and, with `warm`, a warm runner beside it, as prefect-local.sh)."""
        self.stop_worker()
        env = {**self.env, **extra_env}
        if warm:
            socket_path = self.tmp / "warm" / "socket"
            env["ENVFORGE_WARM_RUNNER_SOCKET"] = str(socket_path)
            runs = (self.tmp / "warm.log").read_text().count(" ready on ") \
                if (self.tmp / "warm.log").exists() else 0
            self.warm = start_warm_runner(socket_path, self.tmp / "warm.log", env, runs + 1)
        self.worker = subprocess.Popen(
            [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process",
             "--limit", "4"], env=env, cwd=ROOT,
            stdout=log.open("w"), stderr=subprocess.STDOUT)
        time.sleep(3)  # let it register and make its first poll

    def stop_worker(self) -> None:
        for name in ("worker", "warm"):
            process = getattr(self, name)
            if process is not None:
                process.terminate()
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                setattr(self, name, None)

    def stop(self) -> None:
        self.stop_worker()
        self.server.terminate()
        try:
            self.server.wait(20)
        except subprocess.TimeoutExpired:
            self.server.kill()


def flow_run_times(flow_run_id: str) -> tuple[datetime | None, datetime | None]:
    """(created, start_time) of a flow run, from the Prefect API."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)  # type: ignore[arg-type]
    return run.created, run.start_time


def wait_finished(flow_run_id: str, timeout_s: float = 60.0) -> None:
    """Until the flow run is in a final state: each delivery then starts on a quiet system."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            state = client.read_flow_run(flow_run_id).state  # type: ignore[arg-type]
            if state is not None and state.is_final():
                return
            time.sleep(0.2)
    raise RuntimeError(f"flow run {flow_run_id} did not finish within {timeout_s:g} s")


def set_flow_run_command(command: str | None) -> None:
    """The create-environment deployment's `command` job variable (None: Prefect's default)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentUpdate

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("create-environment/create-environment")
        variables = {k: v for k, v in (deployment.job_variables or {}).items()
                     if k != "command"}
        if command is not None:
            variables["command"] = command
        client.update_deployment(deployment.id, DeploymentUpdate(job_variables=variables))


def deliver(http: Any, url: str, number: int, bare: Path) -> dict[str, float]:
    """One signed opened delivery; seconds to the answer, to running, to the commit."""
    from envforge.webhooks.verify import github_signature
    from tests.unit.webhooks.payloads import github_pull_request

    body = __import__("json").dumps(github_pull_request(
        "opened", number=number, sha=f"{number:040x}", repository="acme/orders-api")).encode()
    headers = {"X-GitHub-Event": "pull_request", "Content-Type": "application/json",
               "X-Hub-Signature-256": github_signature(body, SECRET),
               "X-GitHub-Delivery": f"d-{number}"}
    sent = time.time()
    answer = http.post(url, content=body, headers=headers)
    answered = time.time()
    assert answer.status_code == 202 and answer.json()["status"] == "started", answer.text
    name = f"pr-{number}"
    deadline = time.monotonic() + COMMIT_TIMEOUT_S
    while not committed(bare, name):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} was not committed within {COMMIT_TIMEOUT_S:g} s")
        time.sleep(0.05)
    done = time.time()
    run_id = answer.json().get("flow_run_id") or answer.json().get("flowRunId")
    running = None
    if run_id:
        _, start = flow_run_times(str(run_id))
        running = start.timestamp() if start else None
        wait_finished(str(run_id))
    time.sleep(1.0)  # let the worker release the run before the next delivery
    return {"total": done - sent, "answer": answered - sent,
            "to_running": (running - answered) if running else float("nan"),
            "running_to_commit": (done - running) if running else float("nan")}


def import_seconds() -> float:
    """A fresh interpreter importing the create flow's module, as each flow-run process does."""
    started = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    subprocess.run([sys.executable, "-c", "import flows.environments"], cwd=ROOT, check=True,
                   env=env)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    reps = max(1, min(args.reps, MAX_REPS))
    tmp = Path(tempfile.mkdtemp(prefix="envforge-bench-webhook-"))
    bare = gitops_remote(tmp)
    flow_env = {"ENVFORGE_HOME": str(tmp / "home"), "ENVFORGE_GITOPS_URL": bare.as_uri()}
    prefect = Prefect(tmp)
    rows: dict[str, list[dict[str, float]]] = {}
    try:
        prefect.cli("work-pool", "create", POOL, "--type", "process")
        prefect.cli("deploy", "--prefect-file", "prefect.yaml", "--name", "create-environment")
        os.environ.update({k: prefect.env[k] for k in ("PREFECT_API_URL", "PREFECT_HOME")})
        rows = measure(prefect, flow_env, bare, tmp, reps)
    finally:
        prefect.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    imports = median(import_seconds() for _ in range(3))
    report = render(rows, reps, imports)
    print(report)
    if args.write_docs:
        write_docs_section("webhook-latency", report)
    return 0


FLOW_START = f"{sys.executable} -m envforge.launch.flow_start"
#: setups side by side: (worker environment, the deployment's command, warm runner)
SETUPS: dict[str, tuple[dict[str, str], str | None, bool]] = {
    "Prefect defaults (10 s poll, supervisor + engine)": ({}, None, False),
    "1 s poll": ({"PREFECT_WORKER_QUERY_SECONDS": "1"}, None, False),
    "1 s poll, flow_start, cold": ({"PREFECT_WORKER_QUERY_SECONDS": "1"}, FLOW_START, False),
    "**envforge: 1 s poll, flow_start, warm runner**": (
        {"PREFECT_WORKER_QUERY_SECONDS": "1"}, FLOW_START, True),
}


def measure(prefect: Prefect, flow_env: dict[str, str], bare: Path, tmp: Path, reps: int
            ) -> dict[str, list[dict[str, float]]]:
    import httpx
    from pydantic import SecretStr

    from envforge.webhooks.dispatch import Dispatcher
    from envforge.webhooks.mapping import TemplateMapping
    from envforge.webhooks.server import WebhookApp, WebhookCredentials, WebhookServer

    app = WebhookApp(WebhookCredentials(SecretStr(SECRET)), Dispatcher(
        TemplateMapping.from_data({"default": {"template": "python-service"}})))
    server = WebhookServer(app, "127.0.0.1", 0)
    server.start_background()
    rows: dict[str, list[dict[str, float]]] = {label: [] for label in SETUPS}
    number = 100
    try:
        with httpx.Client(timeout=30) as http:
            for label, (settings, command, warm) in SETUPS.items():
                set_flow_run_command(command)
                prefect.start_worker({**flow_env, **settings}, tmp / "worker.log", warm)
                for i in range(reps):
                    number += 1
                    rows[label].append(deliver(http, f"{server.url}/webhooks/github", number,
                                               bare))
                    print(f"{label} {i + 1}/{reps}: {rows[label][-1]['total']:.2f} s",
                          flush=True)
    finally:
        server.shutdown()
        server.server_close()
    return rows


def render(rows: dict[str, list[dict[str, float]]], reps: int, imports: float) -> str:
    def med(label: str, key: str) -> str:
        values = [r[key] for r in rows[label] if r[key] == r[key]]  # without NaN
        return f"{median(values):.2f} s" if values else "n/a"

    columns = (("answer", "webhook answered (202, run created)"),
               ("to_running", "answer -> Running (poll, process start, imports)"),
               ("running_to_commit", "Running -> committed (the flow)"),
               ("total", "**webhook -> committed** (target < 5 s)"))
    lines = [
        "## Webhook to commit (`bench/webhook_latency.py`)",
        "",
        f"    .venv/bin/python bench/webhook_latency.py --reps {reps} --write-docs",
        "",
        "A signed GitHub `opened` delivery to envforge's webhook server -> the environment "
        "(python-service, no image build) committed on the GitOps remote's main branch, through "
        "a real Prefect server and a process worker, all on 127.0.0.1. Median of "
        f"{reps} deliveries per setup, on this machine ({os.cpu_count()} cores); each delivery "
        "starts once the previous flow run has finished. Setups side by side in one run:",
        "",
        "| setup | " + " | ".join(title for _, title in columns) + " |",
        "|---|" + "---|" * len(columns),
        *(f"| {label} | " + " | ".join(med(label, key) for key, _ in columns) + " |"
          for label in rows),
        "",
        "Per delivery (s): " + "; ".join(
            f"{label.strip('*')}: " + ", ".join(f"{r['total']:.2f}" for r in rows[label])
            for label in rows) + ".",
        "",
        f"A fresh interpreter imports `flows.environments` in {imports:.2f} s (median of 3): "
        "every cold flow-run process pays it (and Prefect's default pays Prefect's import "
        "twice: the workspace supervisor, then the engine).",
        "",
        "Where the time goes with Prefect's default start, after the worker's poll: the "
        "supervisor interpreter imports Prefect and runs the pull steps, then replaces itself "
        "with the engine, which imports Prefect again and then the flow (and, on first use, "
        "the clients it imports lazily). `envforge.launch.flow_start` drops the supervisor "
        "(the engine runs the pull steps itself); the warm runner "
        "(envforge.launch.warm_runner) drops the imports: each engine is forked from a "
        "process that already has them. What remains "
        "is the poll (at most 1 s), the worker's submission and the flow itself.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
