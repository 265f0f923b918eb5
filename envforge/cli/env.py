"""`envforge env …`: environments in the GitOps repository (create, list, show, update,
extend, destroy; upgrade, sleep and wake are in envforge.cli.day_two). create and update run
the template through the runner with the environment's name, type, namespace and host (see
envforge.gitops.runs); publish:gitops commits the result."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from envforge.cli.common import catalog, parse_values
from envforge.cli.day_two import add_day_two_commands
from envforge.cluster.cli import add_env_commands
from envforge.environments.change_intents import change_recorded, recover_killed_change
from envforge.environments.intents import (
    CreateIntent,
    abandon_create,
    begin_create,
    end_create,
    list_intents,
    recover_killed_create,
)
from envforge.environments.lifecycle import (
    EnvironmentPlan,
    EnvironmentRequest,
    plan_environment,
    release_resources,
)
from envforge.environments.run_records import crash_orphaned_runs
from envforge.environments.sleep import wake_environment
from envforge.errors import EnvironmentNotFoundError, StepFailedError, TemplateError
from envforge.gitops.record import EnvironmentRecord, utc_now
from envforge.gitops.repository import open_store
from envforge.gitops.ttl import format_duration
from envforge.run.runner import TemplateRun
from envforge.services import Services
from envforge.settings import load_settings


def add_commands(subparsers: Any) -> None:
    env = subparsers.add_parser("env", help="environments in the GitOps repository")
    sub = env.add_subparsers(dest="env_command", metavar="ACTION", required=True)

    p = sub.add_parser("create", help="create an environment from a template")
    p.add_argument("name")
    p.add_argument("--template", required=True, metavar="NAME|PATH")
    _value_options(p)
    p.add_argument("--ttl", help="time to live, e.g. 48h or 3d (default ENVFORGE_DEFAULT_TTL)")
    p.add_argument("--type", choices=["preview", "development", "staging"], default="preview")
    p.add_argument("--owner", help="owner, e.g. group:platform (default: parameter owner or "
                   "the current user)")
    p.add_argument("--repository", help="source repository of the code")
    p.add_argument("--branch", help="source branch")
    p.add_argument("--pull-request", type=int, help="source pull request number")
    p.add_argument("--commit", help="source commit")
    p.add_argument("--isolation", choices=["namespace", "vcluster", "cluster"],
                   default="namespace")
    p.add_argument("--cluster", help="--isolation cluster: Argo CD destination (name or URL)")
    p.set_defaults(handler=create_command)

    p = sub.add_parser("list", help="list environments")
    p.add_argument("--output", choices=["text", "json"], default="text")
    p.set_defaults(handler=list_command)

    p = sub.add_parser("show", help="show one environment's record")
    p.add_argument("name")
    p.add_argument("--output", choices=["yaml", "json"], default="yaml")
    p.set_defaults(handler=show_command)

    p = sub.add_parser("update", help="re-render an environment with changed parameters")
    p.add_argument("name")
    _value_options(p)
    p.set_defaults(handler=update_command)

    p = sub.add_parser("extend", help="push an environment's expiry out")
    p.add_argument("name")
    p.add_argument("--ttl", required=True, help="new time to live from now, e.g. 24h")
    p.set_defaults(handler=extend_command)

    p = sub.add_parser("destroy", help="remove an environment (Argo CD prunes the rest)")
    p.add_argument("name")
    p.set_defaults(handler=destroy_command)

    for action, verb, handler in (("bind-domain", "add", bind_domain_command),
                                  ("unbind-domain", "remove", unbind_domain_command)):
        p = sub.add_parser(action, help=f"{verb} a custom host of an environment (its own "
                           "Ingress on the environment's Service)")
        p.add_argument("name")
        p.add_argument("host", help="a DNS name, e.g. shop.example.com")
        p.set_defaults(handler=handler)

    add_day_two_commands(sub)  # upgrade, sleep, wake
    add_env_commands(sub)  # status, logs, shell: what the cluster says (envforge.cluster)


def _value_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="assignments", action="append", default=[],
                   metavar="KEY=VALUE", help="a parameter value (repeatable; dotted keys nest)")
    p.add_argument("--values", type=Path, metavar="FILE", help="YAML file of parameter values")


def create_command(args: argparse.Namespace) -> int:
    cat = catalog()
    template = cat.load(args.template)
    request = EnvironmentRequest(
        name=args.name, template=str(template.directory),
        parameters=parse_values(template, args.assignments, args.values),
        environment_type=args.type, ttl=args.ttl, owner=args.owner,
        source={"repository": args.repository, "branch": args.branch,
                "pullRequest": args.pull_request, "commit": args.commit},
        isolation=args.isolation, cluster=args.cluster)
    services = args.make_services()
    output = _run_plan(plan_environment(request, cat, services, if_exists="error"), services)
    print(f"created environment {args.name}: {output['url']} (commit {output['commitHash']})")
    return 0


def update_command(args: argparse.Namespace) -> int:
    cat = catalog()
    services = args.make_services()
    with open_store(services=services) as store:
        record = store.get(args.name, "update")
        if record.status.sleeping is not None:  # a new deployment wakes it (docs/lifecycle.md)
            print(wake_environment(store, record.name, "updated", _run_id()).message)
    template = cat.load(record.spec.template)
    request = EnvironmentRequest(
        name=record.name, template=record.spec.template,
        parameters=parse_values(template, args.assignments, args.values))
    output = _run_plan(plan_environment(request, cat, services), services)
    if output.get("commitHash"):
        print(f"updated environment {record.name} (commit {output['commitHash']})")
    else:
        print(f"environment {record.name} is unchanged; nothing committed")
    return 0


def _run_plan(plan: EnvironmentPlan, services: Services) -> dict[str, Any]:
    """Run the environment's template inline; the publish:gitops step's output. A create is
    recorded (envforge.environments.intents) before its first step, after cleaning up what a
    killed create of the same name left."""
    intent: CreateIntent | None = None
    outcome = "interrupted"
    run = TemplateRun(plan.template, plan.parameters, environment=plan.environment,
                      services=services)
    try:
        if plan.mode == "create":
            cleaned = recover_killed_create(services, plan.name, committed=False)
            if cleaned is not None:
                print(cleaned.summary(), file=sys.stderr)
            intent = begin_create(services, plan.name, plan.template, run.run_id,
                                  str(plan.environment.get("namespace") or plan.name),
                                  plan.environment.get("owner"))
            run.run()
        else:  # an update: what it pushes before its commit is recorded too
            with change_recorded(services, plan.name, "update", run.run_id) as changed:
                if changed is not None:
                    print(changed.summary(), file=sys.stderr)
                run.run()
        outcome = "clean"
    except StepFailedError as e:  # rolled back; what a failed rollback left is cleaned later
        outcome = "abandoned" if e.rollback_failures else "clean"
        raise
    except Exception:
        outcome = "abandoned"
        raise
    finally:  # an interrupt (Ctrl-C) leaves the intent as is: this process is going away
        run.close()
        if intent is not None and outcome == "clean":
            end_create(services, intent)
        elif intent is not None and outcome == "abandoned":
            abandon_create(services, intent)
    for step in plan.template.spec.steps:
        if step.action == "publish:gitops" and step.id in run.outputs:
            return run.outputs[step.id]
    raise TemplateError(f"template {plan.template.name!r}: its publish:gitops step did not "
                        "run (check its 'if')")


def extend_command(args: argparse.Namespace) -> int:
    services = args.make_services()
    with open_store(services=services) as store:
        result = store.extend(args.name, args.ttl, _run_id())
    assert result.record is not None
    print(f"environment {args.name} now expires at {result.record.status.expiresAt.isoformat()}"
          + ("" if result.commit else " (unchanged; nothing committed)"))
    return 0


def destroy_command(args: argparse.Namespace) -> int:
    services = args.make_services()
    with open_store(services=services) as store:
        record = store.find(args.name)
        if record is None:  # nothing committed: maybe a killed create left resources
            cleaned = recover_killed_create(services, args.name, committed=False)
            if cleaned is None:
                store.get(args.name, "destroy")  # raises: no such environment
                raise EnvironmentNotFoundError(args.name)  # pragma: no cover
            print(cleaned.summary())
            return 0
        changed = recover_killed_change(services, args.name)  # a killed update's image
        if changed is not None:
            print(changed.summary(), file=sys.stderr)
        result = store.destroy(args.name, _run_id())
    recover_killed_create(services, args.name, committed=True)  # a stale intent, if any
    released = release_resources(args.name, record.status.namespace, services)
    print(f"destroyed environment {args.name} (commit {result.commit}); Argo CD prunes its "
          f"objects; dropped {', '.join(released.databases) or 'no database'}; deleted "
          f"{', '.join(released.secrets) or 'no Secret'}")
    for problem in released.problems:
        print(f"warning: {problem} (remove it by hand, or run destroy again)", file=sys.stderr)
    return 1 if released.problems else 0


def list_command(args: argparse.Namespace) -> int:
    services = args.make_services()
    crashed = crash_orphaned_runs(services.settings.paths.home)
    if crashed:  # left RUNNING by a killed envforge run
        print(f"marked {len(crashed)} flow run(s) of killed envforge commands crashed: "
              + ", ".join(crashed), file=sys.stderr)
    with open_store(services=services) as store:
        records = store.list()
    committed = {r.name for r in records}
    rows = [_summary(r) for r in records] + [
        _intent_summary(i) for i in list_intents(services) if i.name not in committed]
    rows.sort(key=lambda row: str(row["name"]))
    if args.output == "json":
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no environments")
        return 0
    headers = ["name", "template", "owner", "age", "expires", "url"]
    if any(r["state"] != "awake" for r in rows):  # a STATE column only when one is asleep
        headers.insert(4, "state")
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in headers]
    print("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        print("  ".join(str(row[h]).ljust(w) for h, w in zip(headers, widths, strict=True)))
    return 0


def show_command(args: argparse.Namespace) -> int:
    services = args.make_services()
    with open_store(services=services) as store:
        record = store.get(args.name)
    if args.output == "json":
        print(json.dumps(record.model_dump(mode="json", exclude_none=True), indent=2))
    else:
        print(record.to_yaml(), end="")
    return 0


def _summary(record: EnvironmentRecord) -> dict[str, Any]:
    now = utc_now()
    left = (record.status.expiresAt - now).total_seconds()
    return {
        "name": record.name, "template": record.spec.template, "type": record.spec.type,
        "owner": record.spec.owner,
        "age": format_duration((now - record.status.createdAt).total_seconds()),
        "expires": f"in {format_duration(left)}" if left > 0 else "expired",
        "expiresAt": record.status.expiresAt.isoformat(), "url": record.status.url,
        "state": "asleep" if record.status.sleeping else "awake",
        "sleepingSince": (record.status.sleeping.since.isoformat()
                          if record.status.sleeping else None),
    }


def _intent_summary(intent: CreateIntent) -> dict[str, Any]:
    """A row for an environment whose create has not committed (running, or killed)."""
    age = format_duration((utc_now() - intent.startedAt).total_seconds())
    return {"name": intent.name, "template": intent.template, "type": "-",
            "owner": intent.owner or "-", "age": age, "expires": "-", "expiresAt": None,
            "url": "-", "state": intent.describe(), "sleepingSince": None,
            "run": intent.runId}


def bind_domain_command(args: argparse.Namespace) -> int:
    services = args.make_services()
    with open_store(services=services) as store:
        result = store.bind_domain(args.name, args.host, _run_id())
    host = args.host.strip().rstrip(".").lower()
    print(f"bound {host} to environment {args.name} (commit {result.commit})" if result.commit
          else f"{host} is already bound to environment {args.name}; nothing committed")
    return 0


def unbind_domain_command(args: argparse.Namespace) -> int:
    services = args.make_services()
    with open_store(services=services) as store:
        result = store.unbind_domain(args.name, args.host, _run_id())
    host = args.host.strip().rstrip(".").lower()
    print(f"unbound {host} from environment {args.name} (commit {result.commit})"
          if result.commit else f"{host} is not bound to environment {args.name}; nothing "
          "committed")
    return 0


def _run_id() -> str:
    return load_settings().runner.run_id or f"cli-{os.getpid()}"
