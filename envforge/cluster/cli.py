"""`envforge env status|logs|shell NAME`: an environment's cluster state, logs and a shell,
for a person. ``add_env_commands(env_subparsers)`` adds them to the `env` group.

The namespace and URL come from the environment's record in the GitOps repository (Git says
what exists); ``--namespace`` skips that read. The cluster is a KubernetesCluster block
(``--cluster-block``) or KUBECONFIG / in-cluster configuration. The handlers get the CLI's
services from ``args.make_services`` (set by ``envforge.cli.build_parser``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import threading
from typing import Any, TextIO

from envforge.cluster.client import ClusterReader, open_cluster
from envforge.cluster.logs import container_names, follow_logs, read_logs, select_pods
from envforge.cluster.status import EnvironmentHealth, health_as_dict, read_environment_health
from envforge.errors import WorkloadNotFoundError
from envforge.gitops.naming import check_environment_name
from envforge.services import Services

#: `env status` exit code when the environment was read but is not healthy (1 is an error).
EXIT_UNHEALTHY = 3


def add_env_commands(env_subparsers: Any) -> None:
    """Add status, logs and shell to the `envforge env` subcommands."""
    p = env_subparsers.add_parser(
        "status", help="Argo CD sync/health, rollouts and pods of an environment")
    _common(p)
    p.add_argument("--output", choices=["text", "json"], default="text")
    p.set_defaults(handler=status_command)

    p = env_subparsers.add_parser("logs", help="logs of an environment's pods")
    _common(p)
    p.add_argument("--component", help="Deployment (or component label) to read; default all")
    p.add_argument("--container", help="container of the pod; default all")
    p.add_argument("--tail", type=int, default=100, metavar="N",
                   help="lines per container to start with (default 100)")
    p.add_argument("-f", "--follow", action="store_true", help="stream new lines (Ctrl-C ends)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="with --follow: stop after this many seconds")
    p.set_defaults(handler=logs_command)

    p = env_subparsers.add_parser("shell", help="interactive shell in a running container")
    _common(p)
    p.add_argument("--component", help="Deployment (or component label); default the first")
    p.add_argument("--container", help="container of the pod; default its first")
    p.add_argument("--command", help="what to run instead of a shell, e.g. 'python manage.py "
                   "shell'")
    p.set_defaults(handler=shell_command)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="environment name")
    p.add_argument("--namespace", help="namespace of its workloads; default from its record")
    p.add_argument("--cluster-block", help="KubernetesCluster block; default KUBECONFIG")


def locate_environment(name: str, namespace: str | None, services: Services
                       ) -> tuple[str, str]:
    """(namespace, url): given, or from the environment's record in the GitOps repository."""
    check_environment_name(name)
    if namespace:
        return namespace, ""
    from envforge.gitops.repository import open_store

    with open_store(services=services) as store:
        record = store.get(name, "show the status of")
    return record.status.namespace, record.status.url


def status_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    services: Services = args.make_services()
    namespace, url = locate_environment(args.name, args.namespace, services)
    with open_cluster(services.connections, args.cluster_block) as reader:
        health = read_environment_health(reader, args.name, namespace,
                                         services.settings.gitops.argocd_namespace, url)
    if args.output == "json":
        out.write(json.dumps(health_as_dict(health), indent=2) + "\n")
    else:
        out.write(format_health(health))
    return 0 if health.healthy else EXIT_UNHEALTHY


def format_health(health: EnvironmentHealth) -> str:
    app = health.application
    lines = [f"environment {health.environment}  namespace {health.namespace}  "
             f"{health.url or '(no URL)'}"]
    if app.found:
        operation = f"  last sync {app.operation_phase}" if app.operation_phase else ""
        revision = f"  revision {app.revision[:12]}" if app.revision else ""
        lines.append(f"argo cd: {app.sync} / {app.health}{revision}{operation}")
    else:
        lines.append(f"argo cd: application {app.name} not found (not synced yet?)")
    lines.append("deployments:" if health.rollouts else "deployments: none")
    for r in health.rollouts:
        state = "rolled out" if r.complete else "rolling out"
        lines.append(f"  {r.name:<24} {r.available}/{r.desired} available  "
                     f"{r.updated} updated  {state}")
    lines.append(f"pods ({health.pods_ready} ready):" if health.pods else "pods: none")
    for p in health.pods:
        detail = "; ".join(c.describe() for c in p.containers if not c.ready or c.reason)
        lines.append(f"  {p.name:<32} {p.component or '-':<16} {p.phase:<10} "
                     f"{'ready' if p.ready else 'not ready'}" + (f"  {detail}" if detail else ""))
    problems = health.problems()
    lines.append("healthy" if health.healthy else "problems:")
    lines += [f"  - {problem}" for problem in problems]
    return "\n".join(lines) + "\n"


def logs_command(args: argparse.Namespace, out: TextIO | None = None,
                 stop: threading.Event | None = None) -> int:
    out = out or sys.stdout
    services: Services = args.make_services()
    namespace, _ = locate_environment(args.name, args.namespace, services)
    with open_cluster(services.connections, args.cluster_block) as reader:
        pods = select_pods(reader, args.name, namespace, args.component)
        several = len(pods) > 1 or (args.container is None and any(
            len([c for c in p.containers if not c.init]) > 1 for p in pods))
        unread: list[str] = []

        def report(message: str) -> None:  # one pod's log unreadable: say so, read the rest
            unread.append(message)
            print(f"warning: {message}", file=sys.stderr)

        if args.follow:
            lines = follow_logs(reader, namespace, pods, args.container, args.tail, stop,
                                args.max_seconds, on_error=report)
        else:
            lines = read_logs(reader, namespace, pods, args.container, args.tail,
                              on_error=report)
        read_any = False
        for line in lines:
            read_any = True
            prefix = f"[{line.pod}/{line.container}] " if several else ""
            out.write(f"{prefix}{line.text}\n")
            out.flush()
    streams = sum(len(container_names(p, args.container)) for p in pods)
    return 1 if unread and not read_any and len(unread) >= streams else 0


def shell_command(args: argparse.Namespace) -> int:
    from envforge.cluster.shell import interactive_shell

    services: Services = args.make_services()
    namespace, _ = locate_environment(args.name, args.namespace, services)
    command = shlex.split(args.command) if args.command else None
    with open_cluster(services.connections, args.cluster_block) as reader:
        pod, container = pick_shell_target(reader, args.name, namespace, args.component,
                                           args.container)
        print(f"connecting to {pod} ({container or 'first container'}) in {namespace}; "
              "exit the shell to return", file=sys.stderr)
        return interactive_shell(reader, namespace, pod, container, command)


def pick_shell_target(reader: ClusterReader, name: str, namespace: str, component: str | None,
                      container: str | None) -> tuple[str, str | None]:
    """A ready running pod of the component (any running one if none is ready)."""
    pods = select_pods(reader, name, namespace, component, running_only=True)
    pods.sort(key=lambda p: (not p.ready, p.name))
    pod = pods[0]
    names = [c.name for c in pod.containers if not c.init]
    if container is not None and names and container not in names:
        raise WorkloadNotFoundError(f"pod {pod.name} has no container {container!r}; "
                                    f"containers: {', '.join(names)}")
    return pod.name, container or (names[0] if names else None)
