"""What the pull-request benchmarks (bench/headline.py, bench/fleet.py) share: the services of
`make demo` found from the environment, envforge's webhook server started as a process, signed
GitHub deliveries, and a watch that timestamps each environment's way from the delivery to
Healthy on the cluster (flow run start, commit on the GitOps main, Argo CD Synced at that
revision, Healthy) and back to gone.

Nothing here is simulated: the webhook server is ``envforge webhook serve``, the runs are the
create-environment and destroy-environment deployments run by the demo's worker, the commit
is read from the demo's bare GitOps repository and Sync/Health from the Argo CD Application
on the demo's Kubernetes API server. :func:`real_parts` says which parts were real.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SECRET = "bench-pr-secret"  # the webhook secret of the server this module starts
REPOSITORY = "acme/shop"  # the pull requests' repository (mapped to preview-app)
POLL_S = 0.1


class BenchError(Exception):
    """A benchmark precondition or run failed; the message says what to do."""


@dataclass(frozen=True)
class Demo:
    """The services `make demo` started, as `source .envforge/demo/env.sh` names them."""

    home: Path
    gitops: Path
    kubeconfig: Path
    prefect_api: str
    parameters: dict[str, Any]  # preview-app parameters for a new pull request
    app_repo: Path
    commit: str  # the application commit the pull requests point at (image already built)


def load_demo(template: str = "preview-app", database: str | None = None) -> Demo:
    """The demo from the environment, with pr-1's parameters as the pull requests' template
    parameters (its image is built for the application's commit, so a new pull request at
    that commit reuses it). BenchError when the demo is not there."""
    missing = [v for v in ("ENVFORGE_HOME", "PREFECT_API_URL", "KUBECONFIG", "PGHOST",
                           "VAULT_ADDR") if not os.environ.get(v)]
    if missing:
        raise BenchError(f"{', '.join(missing)} not set: run `make demo`, then "
                         "`source .envforge/demo/env.sh`, then this benchmark")
    home = Path(os.environ["ENVFORGE_HOME"])
    gitops = home / "gitops.git"
    try:
        text = git(gitops, "show", "main:environments/pr-1/environment.yaml")
    except subprocess.CalledProcessError:
        raise BenchError(f"{gitops} has no environment pr-1: run `make demo` first (it creates "
                         "pr-1 and builds the application's image)") from None
    record = yaml.safe_load(text)
    if record["spec"]["template"] != template:
        raise BenchError(f"pr-1 was made from {record['spec']['template']!r}, not {template!r}")
    parameters = {k: v for k, v in record["spec"]["parameters"].items() if k != "name"}
    if database:
        parameters["database"] = database
    app_repo = home / "apps" / "shop"
    commit = subprocess.run(["git", "-C", str(app_repo), "rev-parse", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    return Demo(home, gitops, Path(os.environ["KUBECONFIG"]), os.environ["PREFECT_API_URL"],
                parameters, app_repo, commit)


def git(bare: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(bare), *args], check=True,
                          capture_output=True, text=True).stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- which parts were real ------------------------------------------------------------
def _command_lines() -> list[str]:
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return lines


def real_parts(core: Any, kubeconfig: Path) -> dict[str, str]:
    """Argo CD (stand-in or controller process), the node (kwok or a kubelet with a container
    runtime), Vault (stand-in or OpenBao), from what runs and what the servers answer. Only
    processes pointed at this cluster's kubeconfig count (other clusters may run beside it)."""
    import httpx

    paths = {str(kubeconfig), str(kubeconfig.resolve())}
    commands = [c for c in _command_lines() if any(p in c for p in paths)]
    if any("argocd-application-controller" in c or "application-controller" in c
           for c in commands):
        argocd = "real Argo CD (argocd-application-controller process)"
    elif any("tests.standins.argocd" in c for c in commands):
        argocd = "Argo CD stand-in (tests/standins/argocd)"
    else:
        argocd = "unknown (no Argo CD process with this cluster's kubeconfig)"
    nodes = core.list_node().items
    described = []
    for node in nodes:
        info = node.status.node_info
        fake = "kwok" in json.dumps(node.metadata.annotations or {}) or \
            "kwok" in (info.kubelet_version or "") or "kwok" in (
                info.container_runtime_version or "")
        kind = "kwok (simulated kubelet)" if fake else "real kubelet"
        described.append(f"{node.metadata.name}: {kind}, runtime "
                         f"{info.container_runtime_version or 'none'}")
    vault_addr = os.environ["VAULT_ADDR"].rstrip("/")
    try:
        answer = httpx.get(f"{vault_addr}/v1/sys/seal-status", timeout=5)
        version = str(answer.json().get("version", "?"))
        server = answer.headers.get("server", "")
        vault = (f"Vault stand-in (tests/standins/vault.py, says {version})"
                 if "standin" in version.lower() or "standin" in server.lower()
                 else f"real server {version} (OpenBao/Vault, sys/seal-status)")
    except (httpx.HTTPError, ValueError) as e:
        vault = f"unknown ({type(e).__name__} from {vault_addr}/v1/sys/seal-status)"
    return {"Argo CD": argocd, "node": "; ".join(described) or "no node",
            "Vault": vault}


# --- the webhook server -----------------------------------------------------------------
class WebhookServer:
    """``envforge webhook serve`` as its own process, mapped to the template; stopped by pid."""

    def __init__(self, demo: Demo, workdir: Path, template: str = "preview-app",
                 ttl: str = "2h") -> None:
        mapping = workdir / "mapping.yaml"
        mapping.write_text(yaml.safe_dump({"repositories": {REPOSITORY: {
            "template": template, "parameters": demo.parameters, "ttl": ttl}}}))
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = workdir / "webhook.log"
        env = {**os.environ, "ENVFORGE_GITHUB_WEBHOOK_SECRET": SECRET}
        self.process = subprocess.Popen(
            [str(BIN / "envforge"), "webhook", "serve", "--port", str(port), "--mapping",
             str(mapping), "--max-concurrent", "64"], env=env, cwd=ROOT,
            stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        import httpx

        for _ in range(100):
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).is_success:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise BenchError(f"the webhook server did not start; see {self.log}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def pull_request_payload(action: str, number: int, demo: Demo) -> dict[str, Any]:
    """A GitHub ``pull_request`` delivery as GitHub sends it (the fields envforge reads)."""
    return {
        "action": action, "number": number,
        "pull_request": {
            "number": number, "html_url": f"https://github.com/{REPOSITORY}/pull/{number}",
            "state": "closed" if action == "closed" else "open", "merged": False,
            "closed_at": None, "updated_at": "2026-12-04T00:00:00Z",
            "head": {"sha": demo.commit, "ref": f"bench/{number}",
                     "repo": {"full_name": REPOSITORY}},
            "base": {"ref": "main"}},
        # recorded as the environment's source; the build clones the mapping's repoUrl (the
        # demo's local application repository), as preview-app builds parameters.repoUrl
        "repository": {"full_name": REPOSITORY,
                       "clone_url": f"https://github.com/{REPOSITORY}.git"},
        "sender": {"login": "bench"},
    }


def deliver(http: Any, server: WebhookServer, action: str, number: int, demo: Demo
            ) -> tuple[float, float, str]:
    """Send one signed delivery; (sent, answered, flow run id)."""
    body = json.dumps(pull_request_payload(action, number, demo)).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-GitHub-Event": "pull_request", "Content-Type": "application/json",
               "X-Hub-Signature-256": signature,
               "X-GitHub-Delivery": f"bench-{action}-{number}-{time.time_ns()}"}
    sent = time.time()
    answer = http.post(f"{server.url}/webhooks/github", content=body, headers=headers)
    answered = time.time()
    data = answer.json() if answer.headers.get("content-type", "").startswith(
        "application/json") else {}
    if answer.status_code != 202 or data.get("status") != "started":
        raise BenchError(f"pr-{number} {action}: the webhook server answered "
                         f"{answer.status_code}: {answer.text[:300]}")
    return sent, answered, str(data["flowRunId"])


# --- watching environments ----------------------------------------------------------------
@dataclass
class Timeline:
    """Wall-clock times (time.time()) of one environment's way to Healthy."""

    name: str
    sent: float = 0.0
    answered: float = 0.0
    flow_run_id: str = ""
    running: float | None = None  # the flow run's start_time (Prefect)
    committed: float | None = None
    commit: str | None = None
    synced: float | None = None
    healthy: float | None = None
    finished: float | None = None  # the create flow run's end
    steps: dict[str, float] = field(default_factory=dict)  # task run -> seconds
    error: str | None = None

    def phases(self) -> dict[str, float | None]:
        """Seconds per phase, each from the previous mark (None: not reached)."""
        marks = [("webhook answered", self.sent, self.answered),
                 ("run start", self.answered, self.running),
                 ("steps to commit", self.running, self.committed),
                 ("Argo CD sync", self.committed, self.synced),
                 ("rollout (Healthy)", self.synced, self.healthy),
                 ("PR opened -> Healthy", self.sent, self.healthy)]
        return {label: (end - start) if start is not None and end is not None else None
                for label, start, end in marks}


class Cluster:
    """The demo's Kubernetes API: Argo CD Applications, namespaces, nodes."""

    def __init__(self, kubeconfig: Path) -> None:
        from kubernetes import client, config

        self.api = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig))
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)

    def applications(self) -> dict[str, dict[str, Any]]:
        found: Any = self.custom.list_namespaced_custom_object(
            "argoproj.io", "v1alpha1", "argocd", "applications", _request_timeout=10)
        return {a["metadata"]["name"]: a for a in found.get("items", [])}

    def namespaces(self) -> set[str]:
        return {str(n.metadata.name) for n in
                self.core.list_namespace(_request_timeout=10).items if n.metadata}


def environment_dirs(demo: Demo) -> list[str]:
    """The environments on the GitOps main: one line per ``environments/<name>`` directory."""
    listed = git(demo.gitops, "ls-tree", "--name-only", "main", "environments/")
    return [line.split("/", 1)[1] for line in listed.splitlines() if "/" in line]


def adding_commit(demo: Demo, name: str) -> str | None:
    out = git(demo.gitops, "log", "--format=%H", "--diff-filter=A", "-1", "main", "--",
              f"environments/{name}/environment.yaml")
    return out or None


def at_or_after(demo: Demo, commit: str, revision: str) -> bool:
    """Whether Argo CD's synced ``revision`` contains ``commit`` (later commits of other
    environments may land in the same sync)."""
    if revision == commit:
        return True
    done = subprocess.run(["git", "--git-dir", str(demo.gitops), "merge-base", "--is-ancestor",
                           commit, revision], capture_output=True)
    return done.returncode == 0


def watch_until_healthy(demo: Demo, cluster: Cluster, timelines: Iterable[Timeline],
                        timeout_s: float) -> None:
    """Poll Git, the Argo CD Applications and Prefect until every timeline is Healthy (or
    failed, or ``timeout_s`` passed: its error says where it stopped)."""
    from prefect.client.orchestration import get_client

    pending = {t.name: t for t in timelines}
    deadline = time.monotonic() + timeout_s
    last_prefect = 0.0
    with get_client(sync_client=True) as prefect:
        while pending and time.monotonic() < deadline:
            now = time.time()
            on_main = set(environment_dirs(demo))
            apps = cluster.applications()
            for name, t in list(pending.items()):
                if t.committed is None and name in on_main:
                    t.committed, t.commit = now, adding_commit(demo, name)
                app = apps.get(name)
                if t.commit and app is not None:
                    sync = (app.get("status") or {}).get("sync") or {}
                    health = ((app.get("status") or {}).get("health") or {}).get("status")
                    if t.synced is None and sync.get("status") == "Synced" and at_or_after(
                            demo, t.commit, str(sync.get("revision") or "")):
                        t.synced = now
                    if t.synced is not None and health == "Healthy":
                        t.healthy = now
                        del pending[name]
            if time.monotonic() - last_prefect > 1.0:  # a failed run ends the wait for it
                last_prefect = time.monotonic()
                for name, t in list(pending.items()):
                    try:
                        run = prefect.read_flow_run(t.flow_run_id)  # type: ignore[arg-type]
                    except Exception as e:  # an overloaded server's 500 or timeout: next poll
                        print(f"{name}: Prefect did not answer ({type(e).__name__}); "
                              "asking again", file=sys.stderr, flush=True)
                        continue
                    if run.state is not None and run.state.is_final() and \
                            not run.state.is_completed():
                        t.error = f"create run {run.state.name}: {run.state.message}"
                        del pending[name]
            time.sleep(POLL_S)
    for t in pending.values():
        reached = [k for k, v in t.phases().items() if v is not None]
        t.error = t.error or (f"not Healthy within {timeout_s:g} s (reached: "
                              f"{', '.join(reached) or 'nothing'})")


def read_run_times(timelines: Iterable[Timeline], timeout_s: float = 120.0) -> None:
    """Each create run's start and end, and its task runs' durations, from Prefect (waits
    until each run is final, so nothing still holds the environment's lock)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as prefect:
        for t in timelines:
            while True:
                run = prefect.read_flow_run(t.flow_run_id)  # type: ignore[arg-type]
                if (run.state is not None and run.state.is_final()) or \
                        time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            t.running = run.start_time.timestamp() if run.start_time else None
            t.finished = run.end_time.timestamp() if run.end_time else None
            tasks = prefect.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[run.id])))
            t.steps = {task.name: task.total_run_time.total_seconds() for task in tasks}


def destroy_and_wait(http: Any, server: WebhookServer, demo: Demo, cluster: Cluster,
                     numbers: Iterable[int], timeout_s: float) -> list[str]:
    """Close each pull request (the destroy deployment through the webhook) and wait until
    its directory, Application and namespace are gone; what is left, named."""
    names = {f"pr-{n}": n for n in numbers}
    for number in names.values():
        deliver(http, server, "closed", number, demo)
    deadline = time.monotonic() + timeout_s
    left: list[str] = []
    while time.monotonic() < deadline:
        on_main, apps, spaces = set(environment_dirs(demo)), cluster.applications(), \
            cluster.namespaces()
        left = [f"{kind} {name}" for name in names for kind, present in (
            ("directory", name in on_main), ("Application", name in apps),
            ("namespace", name in spaces)) if present]
        if not left:
            return []
        time.sleep(0.5)
    return left


def first_number(demo: Demo) -> int:
    """The first of this run's pull-request numbers: never used before on this Prefect server
    (a delivery's idempotency key includes the number, so a reused one would return an old
    run). From the clock, which moves on by more than a run's count of numbers while it runs."""
    taken = [int(n[3:]) for n in environment_dirs(demo) if n[3:].isdigit()]
    return max([*taken, int(time.time()) % 9_000_000 + 1_000_000]) + 1
