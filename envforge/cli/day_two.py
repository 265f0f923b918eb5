"""`envforge env upgrade|sleep|wake`: day-two changes to live environments.

upgrade re-renders environments with the current version of their template (a diff per
environment, one commit each, unchanged ones skipped, failures reported and the rest done);
sleep scales an environment's workloads to zero through Git and wake restores them
(envforge.environments.upgrade, envforge.environments.sleep; docs/lifecycle.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from envforge.cli.common import catalog, parse_values
from envforge.environments.sleep import sleep_environment, wake_environment
from envforge.environments.upgrade import UpgradeOutcome, upgrade_environments
from envforge.errors import EnvforgeError
from envforge.gitops.repository import open_store
from envforge.settings import load_settings


def add_day_two_commands(sub: Any) -> None:
    p = sub.add_parser("upgrade", help="re-render environments with the current version of "
                       "their template (diff, one commit per environment)")
    p.add_argument("names", nargs="*", metavar="NAME", help="environments to upgrade")
    p.add_argument("--template", metavar="T", help="only environments made from template T "
                   "(alone: every one of them)")
    p.add_argument("--all", dest="all_environments", action="store_true",
                   help="every environment")
    p.add_argument("--dry-run", action="store_true", help="show the diffs, commit nothing")
    p.add_argument("--set", dest="assignments", action="append", default=[],
                   metavar="KEY=VALUE", help="a parameter value for every chosen environment, "
                   "e.g. one the new template version requires (needs one template)")
    p.add_argument("--no-diff", action="store_true", help="only one line per environment")
    p.add_argument("--output", choices=["text", "json"], default="text")
    p.set_defaults(handler=upgrade_command)

    for action, text in (("sleep", "scale an environment's workloads to zero through Git "
                          "(database and Secrets stay)"),
                         ("wake", "restore a sleeping environment's workloads")):
        p = sub.add_parser(action, help=text)
        p.add_argument("name")
        p.add_argument("--reason", default="asked", help="why (recorded in the environment)")
        p.set_defaults(handler=sleep_command if action == "sleep" else wake_command)


def upgrade_command(args: argparse.Namespace) -> int:
    cat = catalog()
    services = args.make_services()
    with open_store(services=services) as store:
        overrides: dict[str, Any] = {}
        if args.assignments:
            template_name = args.template
            if template_name is None and len(args.names) == 1:
                template_name = store.get(args.names[0], "upgrade").spec.template
            if template_name is None:
                raise EnvforgeError("--set needs one template: give --template T or exactly "
                                    "one environment name")
            overrides = parse_values(cat.load(template_name), args.assignments, None)

        def show(outcome: UpgradeOutcome) -> None:
            if args.output == "text":
                print(_outcome_line(outcome))
                if outcome.diff and not args.no_diff:
                    print(outcome.diff, end="")

        report = upgrade_environments(store, cat, args.names, args.template,
                                      args.all_environments, args.dry_run, _run_id(),
                                      overrides, on_outcome=show, services=services)
    if args.output == "json":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        counts = {s: len(report.having(s))
                  for s in ("upgraded", "would-upgrade", "unchanged", "failed")}
        print(", ".join(f"{n} {s}" for s, n in counts.items() if n or s == "failed")
              + (" (dry run: nothing committed)" if args.dry_run else ""))
    for outcome in report.failed:
        print(f"error: {outcome.error}", file=sys.stderr)
    return 1 if report.failed else 0


def _outcome_line(outcome: UpgradeOutcome) -> str:
    versions = f"{outcome.template} {outcome.from_version} -> {outcome.to_version}"
    defaults = (f"; new parameter(s) took their default: {', '.join(outcome.defaults)}"
                if outcome.defaults else "")
    if outcome.rebuilt:
        defaults += ("; built again: " if outcome.status == "upgraded" else
                     "; would build again: ") + "; ".join(outcome.rebuilt)
    if outcome.status == "upgraded":
        return (f"{outcome.name}: upgraded ({versions}; {len(outcome.files)} file(s), commit "
                f"{(outcome.commit or '')[:12]}){defaults}")
    if outcome.status == "would-upgrade":
        return (f"{outcome.name}: would upgrade ({versions}; {len(outcome.files)} file(s))"
                f"{defaults}")
    if outcome.status == "unchanged":
        return f"{outcome.name}: unchanged ({outcome.template}); nothing committed"
    return f"{outcome.name}: failed; nothing committed"


def sleep_command(args: argparse.Namespace) -> int:
    with open_store(services=args.make_services()) as store:
        result = sleep_environment(store, args.name, args.reason, _run_id())
    print(result.message)
    return 0


def wake_command(args: argparse.Namespace) -> int:
    with open_store(services=args.make_services()) as store:
        result = wake_environment(store, args.name, args.reason, _run_id())
    print(result.message)
    return 0


def _run_id() -> str:
    return load_settings().runner.run_id or f"cli-{os.getpid()}"
