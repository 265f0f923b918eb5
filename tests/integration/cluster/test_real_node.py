"""The real node (scripts/services/node.sh): a kubelet and kube-proxy built from the pinned
module, containerd, runc and the CNI bridge. What kwok could only pretend: images pulled from
the local plain-HTTP registry (or refused), containers with runtime ids, crash loops that
cycle, logs and exec answered by the kubelet, probes, Services and Ingress routing."""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import urllib.error
import urllib.request
from typing import Any

import pytest

from blocks.kubernetes import KubernetesCluster
from envforge.cluster import shell
from envforge.cluster.client import ClusterReader
from envforge.cluster.logs import read_logs, select_pods
from envforge.errors import ClusterApiError
from tests.integration.cluster.real_node import (
    PASSWORD,
    USER,
    NodeImages,
    apply,
    container_status,
    docker_config_secret,
    get,
    pod,
    wait_until,
)
from tests.kube import ROOT as ROOT_DIR
from tests.kube import ControlPlane


def reader_for(plane: ControlPlane) -> ClusterReader:
    cluster = KubernetesCluster(kubeconfig_path=str(plane.kubeconfig))
    return ClusterReader(cluster.get_client(), "real node cluster", 30)


def running(plane: ControlPlane, namespace: str, name: str) -> bool:
    """Whether the pod's container is ready; a pod its controller has not made yet is not."""
    try:
        return bool(container_status(plane, namespace, name).get("ready"))
    except subprocess.CalledProcessError:  # `kubectl get pod`: NotFound until the StatefulSet
        return False


def run_in_pod(plane: ControlPlane, namespace: str, name: str, command: list[str],
               stdin: bytes = b"") -> tuple[int, bytes]:
    """envforge's exec (websocket v5) into the pod: exit code and stdout."""
    reader = reader_for(plane)
    client = shell.open_exec(reader, namespace, name, "main", command, False)
    read_fd, write_fd = os.pipe()
    os.write(write_fd, stdin)
    os.close(write_fd)
    out = io.BytesIO()
    with os.fdopen(read_fd, "rb") as source:
        code = shell.pump(client, source, out, io.BytesIO())
    return code, out.getvalue()


def test_the_node_is_real_and_runs_a_container_pulled_from_the_registry(
        real_cluster: ControlPlane, node_images: NodeImages, node_namespace: str) -> None:
    namespace = node_namespace
    node = real_cluster.kubectl("get", "node", "envforge-node-1", "-o",
                                "jsonpath={.status.nodeInfo.containerRuntimeVersion} "
                                "{.status.nodeInfo.kubeletVersion}").stdout.split()
    assert node[0].startswith("containerd://") and node[1] == "v1.37.2"
    apply(real_cluster, namespace,
          pod("app", node_images.image, "echo started in $(hostname); exec sleep 3600"))
    wait_until("pod app ready", lambda: running(real_cluster, namespace, "app"))
    status = container_status(real_cluster, namespace, "app")
    assert status["containerID"].startswith("containerd://") and len(status["containerID"]) > 70
    assert status["imageID"].endswith("@" + node_images.digest)
    assert real_cluster.kubectl("-n", namespace, "logs", "app").stdout == "started in app\n"
    # exec: the exit code is the command's, and closing stdin ends a command reading it
    assert run_in_pod(real_cluster, namespace, "app", ["sh", "-c", "exit 3"]) == (3, b"")
    assert run_in_pod(real_cluster, namespace, "app", ["cat"], b"to cat\n") == (0, b"to cat\n")


def test_image_pull_failures_wrong_tag_and_missing_credentials(
        real_cluster: ControlPlane, node_images: NodeImages, node_namespace: str) -> None:
    namespace = node_namespace
    wrong_tag = node_images.image.replace(":1", ":no-such-tag")
    apply(real_cluster, namespace, pod("wrong-tag", wrong_tag, "true"),
          pod("no-credentials", node_images.private_image, "sleep 3600"))

    def waiting(name: str) -> dict[str, Any]:
        state = container_status(real_cluster, namespace, name).get("state", {})
        reason = state.get("waiting", {}).get("reason")
        return dict(state["waiting"]) if reason in ("ErrImagePull", "ImagePullBackOff") else {}

    assert "not found" in wait_until("wrong tag refused", lambda: waiting("wrong-tag"))["message"]
    refused = wait_until("pull without credentials refused", lambda: waiting("no-credentials"))
    assert "401 Unauthorized" in refused["message"] or "unauthorized" in refused["message"]
    # the same image with the pull secret runs
    secret = docker_config_secret(node_images.private_host, USER, PASSWORD)
    apply(real_cluster, namespace, secret,
          pod("with-secret", node_images.private_image, "sleep 3600",
              imagePullSecrets=[{"name": "pull"}]))
    wait_until("pod pulled with its secret ready",
               lambda: running(real_cluster, namespace, "with-secret"))
    events = real_cluster.kubectl("-n", namespace, "get", "events", "-o", "json").stdout
    assert "with-secret" in events and PASSWORD not in events


def test_a_crashing_container_cycles_through_crash_loop_back_off(
        real_cluster: ControlPlane, node_images: NodeImages, node_namespace: str) -> None:
    namespace = node_namespace
    apply(real_cluster, namespace, pod("crash", node_images.image, "echo boom; exit 2"))
    seen: set[str] = set()

    def restarted_twice() -> bool:
        status = container_status(real_cluster, namespace, "crash")
        seen.update(status.get("state", {}))
        seen.update([status.get("state", {}).get("waiting", {}).get("reason", "")])
        return int(status.get("restartCount", 0)) >= 2 and "CrashLoopBackOff" in seen

    wait_until("two restarts in CrashLoopBackOff", restarted_twice, seconds=120, every=0.3)
    last = container_status(real_cluster, namespace, "crash")["lastState"]["terminated"]
    assert last["exitCode"] == 2 and last["reason"] == "Error"
    # while it backs off, its log is the last run's (the kubelet keeps one dead instance)
    assert real_cluster.kubectl("-n", namespace, "logs", "crash").stdout == "boom\n"


def test_logs_of_a_container_waiting_to_start_are_a_400(
        real_cluster: ControlPlane, node_images: NodeImages, node_namespace: str) -> None:
    namespace = node_namespace
    wrong_tag = node_images.image.replace(":1", ":missing")
    apply(real_cluster, namespace, pod("waiting", wrong_tag, "true"))
    wait_until("pull refused", lambda: container_status(real_cluster, namespace, "waiting")
               .get("state", {}).get("waiting", {}).get("reason") in ("ErrImagePull",
                                                                        "ImagePullBackOff"))
    reader = reader_for(real_cluster)
    pods = select_pods(reader, namespace, namespace)
    reported: list[str] = []
    assert list(read_logs(reader, namespace, pods, on_error=reported.append)) == []
    assert len(reported) == 1 and "waiting to start" in reported[0]
    with pytest.raises(ClusterApiError, match="waiting to start"):
        list(read_logs(reader, namespace, pods))


def test_a_failing_readiness_probe_keeps_a_running_pod_unready(
        real_cluster: ControlPlane, node_images: NodeImages, node_namespace: str) -> None:
    namespace = node_namespace
    probe = {"readinessProbe": {"exec": {"command": ["test", "-f", "/ready"]},
                                "periodSeconds": 1, "failureThreshold": 1}}
    apply(real_cluster, namespace, pod("probed", node_images.image, "exec sleep 3600",
                                       container=probe))
    wait_until("container running", lambda: "running" in container_status(
        real_cluster, namespace, "probed").get("state", {}))
    conditions = {c["type"]: c["status"]
                  for c in get(real_cluster, namespace, "pod", "probed")["status"]["conditions"]}
    assert conditions["Ready"] == "False" and conditions["ContainersReady"] == "False"
    real_cluster.kubectl("-n", namespace, "exec", "probed", "--", "touch", "/ready")
    wait_until("ready once the probe passes", lambda: running(real_cluster, namespace, "probed"))


def test_a_service_and_an_ingress_route_to_the_pods(
        real_cluster: ControlPlane, node_images: NodeImages, node_namespace: str) -> None:
    namespace = node_namespace
    labels = {"app": "web"}
    serve = ('mkdir -p /www && echo "hello from $(hostname)" > /www/index.html '
             "&& exec httpd -f -p 8080 -h /www")
    web = pod("web", node_images.image, serve,
              container={"readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                            "periodSeconds": 1}})
    web["metadata"]["labels"] = labels
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}}
    apply(real_cluster, namespace, web, service,
          pod("client", node_images.image, "exec sleep 3600"))
    wait_until("web ready (kubelet's HTTP probe)", lambda: running(real_cluster, namespace, "web"))
    wait_until("client ready", lambda: running(real_cluster, namespace, "client"))
    cluster_ip = get(real_cluster, namespace, "service", "web")["spec"]["clusterIP"]
    request = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {cluster_ip} 80"
    code, answer = run_in_pod(real_cluster, namespace, "client", ["sh", "-c", request])
    assert code == 0 and b"200 OK" in answer and b"hello from web" in answer  # kube-proxy

    port = real_cluster.ingress_port
    if port is None:
        pytest.skip("no ingress controller with this node (ENVFORGE_INGRESS=0)")
    host = f"{namespace}.preview.test"
    apply(real_cluster, namespace, {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
        "spec": {"rules": [{"host": host, "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})

    def through_ingress() -> bytes:
        call = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host})
        try:
            with urllib.request.urlopen(call, timeout=5) as answer:
                return bytes(answer.read()) if answer.status == 200 else b""
        except OSError:
            return b""

    assert wait_until("the Ingress host answering", through_ingress) == b"hello from web\n"
    status = wait_until("the Ingress status address", lambda: get(
        real_cluster, namespace, "ingress", "web").get("status", {}).get("loadBalancer", {})
        .get("ingress"))
    assert status == [{"ip": "127.0.0.1"}]
    other = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": "other.test"})
    with pytest.raises(urllib.error.HTTPError, match="404"):
        urllib.request.urlopen(other, timeout=5)


def shop(name: str, image: str, config: dict[str, str], host: str) -> list[dict[str, Any]]:
    """The demo application as preview-app deploys it: its settings from a Secret, probed on
    /healthz as user 10001, behind a Service and an Ingress for ``host``."""
    labels = {"app.kubernetes.io/name": name}
    container = {"name": "app", "image": image, "ports": [{"containerPort": 8080,
                                                           "name": "http"}],
                 "envFrom": [{"secretRef": {"name": f"{name}-secrets"}}],
                 "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                                    "periodSeconds": 1}}
    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{name}-secrets"},
         "stringData": config},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"securityContext": {"runAsNonRoot": True,
                                                            "runAsUser": 10001},
                                        "containers": [container]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
         "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": "http"}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
         "spec": {"rules": [{"host": host, "http": {"paths": [{
             "path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": name, "port": {"number": 80}}}}]}}]}}]


def http_get(port: int, host: str) -> tuple[int, str]:
    call = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host})
    try:
        with urllib.request.urlopen(call, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def test_the_demo_app_reads_its_secret_and_database_through_the_ingress(
        real_cluster: ControlPlane, node_database: Any, app_image: str,
        node_namespace: str) -> None:
    import psycopg

    namespace, port = node_namespace, real_cluster.ingress_port
    assert port is not None, "the real node's cluster runs an ingress controller"
    database = f"envforge_{namespace.replace('-', '_')}"
    with psycopg.connect(host="127.0.0.1", port=node_database.port, user="postgres",
                         dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    schema = (ROOT_DIR / "templates" / "preview-app" / "db" / "schema.sql").read_text()
    with psycopg.connect(host="127.0.0.1", port=node_database.port, user="postgres",
                         dbname=database, autocommit=True) as conn:
        conn.execute(schema)
        conn.execute("INSERT INTO public.customers (email, full_name) VALUES "
                     "('c1@anon.invalid', 'Anon One'), ('c2@anon.invalid', 'Anon Two')")
    settings = {"PGHOST": node_database.gateway, "PGPORT": str(node_database.port),
                "PGUSER": "postgres", "DATABASE_NAME": database}
    unreachable = {**settings, "PGPORT": "1"}  # nothing is exposed to the node there
    apply(real_cluster, namespace,
          *shop("shop", app_image, settings, f"shop.{namespace}.test"),
          *shop("lost", app_image, unreachable, f"lost.{namespace}.test"))

    answer = wait_until("the app answering 200 through the ingress",
                        lambda: (lambda r: r if r[0] == 200 else None)(
                            http_get(port, f"shop.{namespace}.test")))
    assert answer[1].splitlines() == [
        f"customers of {database} (2 in all, first 5):",
        "1\tc1@anon.invalid\tAnon One", "2\tc2@anon.invalid\tAnon Two"]
    _, text = wait_until("the app without its database answering",
                         lambda: (lambda r: r if r[0] == 503 else None)(
                             http_get(port, f"lost.{namespace}.test")))
    assert f"database {node_database.gateway}:1/{database} cannot be read" in text


@pytest.mark.timeout(1200)  # the 374 MB PostgreSQL image copied and pulled: minutes when busy
def test_an_environments_own_database_container_is_reached_with_its_secrets_password(
        real_cluster: ControlPlane, node_images: NodeImages, app_image: str,
        node_namespace: str) -> None:
    """The building blocks of ``database: container`` on the node: PostgreSQL 15 from the
    image scripts/services/images.sh builds (Debian's), as a StatefulSet behind a Service in
    the environment's namespace, its superuser password a generated value in a Secret; seeded
    through exec; the demo app reads host, user and that password from its own Secret, lists
    the rows through the ingress, and the same app with another password is refused."""
    namespace, port = node_namespace, real_cluster.ingress_port
    assert port is not None
    image = f"{node_images.registry}/base/postgres:15"
    subprocess.run(["bash", str(ROOT_DIR / "scripts" / "services" / "images.sh"), "push",
                    "postgres", image], check=True, capture_output=True, timeout=1200)
    password = secrets.token_urlsafe(18)
    labels = {"app.kubernetes.io/name": "db"}
    apply(real_cluster, namespace,
          {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
           "stringData": {"POSTGRES_PASSWORD": password}},
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
           "spec": {"selector": labels, "ports": [{"port": 5432, "targetPort": 5432}]}},
          {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
           "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels}, "spec": {
                        "terminationGracePeriodSeconds": 5,
                        "containers": [{
                            "name": "postgres", "image": image,
                            "envFrom": [{"secretRef": {"name": "db"}}],
                            "env": [{"name": "POSTGRES_DB", "value": "shop"},
                                    {"name": "PGDATA",
                                     "value": "/var/lib/postgresql/data/pgdata"}],
                            "ports": [{"containerPort": 5432}],
                            "readinessProbe": {"tcpSocket": {"port": 5432},
                                               "periodSeconds": 1},
                            "volumeMounts": [{"name": "data",
                                              "mountPath": "/var/lib/postgresql/data"}]}],
                        "volumes": [{"name": "data", "emptyDir": {}}]}}}})
    wait_until("PostgreSQL ready in its pod", lambda: running(real_cluster, namespace, "db-0"),
               seconds=600)
    schema = (ROOT_DIR / "templates" / "preview-app" / "db" / "schema.sql").read_text()
    seeded = real_cluster.kubectl(
        "-n", namespace, "exec", "-i", "db-0", "--", "/usr/lib/postgresql/15/bin/psql",
        "-h", "/tmp", "-U", "postgres", "-d", "shop", "-v", "ON_ERROR_STOP=1", "-q",
        stdin=schema + "\nINSERT INTO public.customers (email, full_name) VALUES "
        "('c1@anon.invalid', 'Anon One'), ('c2@anon.invalid', 'Anon Two');\n")
    assert seeded.returncode == 0
    address = get(real_cluster, namespace, "service", "db")["spec"]["clusterIP"]
    settings = {"PGHOST": address, "PGPORT": "5432", "PGUSER": "postgres",
                "PGPASSWORD": password, "DATABASE_NAME": "shop"}
    apply(real_cluster, namespace,
          *shop("shop", app_image, settings, f"shop.{namespace}.test"),
          *shop("wrong", app_image, {**settings, "PGPASSWORD": "not-the-password"},
                f"wrong.{namespace}.test"))
    answer = wait_until("the app answering 200 through the ingress",
                        lambda: (lambda r: r if r[0] == 200 else None)(
                            http_get(port, f"shop.{namespace}.test")))
    assert answer[1].splitlines() == [
        "customers of shop (2 in all, first 5):",
        "1\tc1@anon.invalid\tAnon One", "2\tc2@anon.invalid\tAnon Two"]
    _, text = wait_until("the app with a wrong password refused",
                         lambda: (lambda r: r if r[0] == 503 else None)(
                             http_get(port, f"wrong.{namespace}.test")))
    assert password not in text and "not-the-password" not in text
