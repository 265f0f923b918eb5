"""`envforge deploy`: per template, a Prefect deployment that runs it (``scaffold/<template>``)
and one that creates an environment from it (``create-environment/<template>``), each with
the template's own form."""

from __future__ import annotations

import argparse
from typing import Any

from envforge.cli.common import catalog, require_prefect_api
from envforge.environments.deployments import DEFAULT_WORK_POOL, register_template_deployments


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "deploy", help="register run buttons for each template: scaffold/<template> and "
             "create-environment/<template> (an environment from a form)"
    )
    p.add_argument("templates", nargs="*", metavar="NAME|PATH", help="default: every template")
    p.add_argument("--work-pool", default=DEFAULT_WORK_POOL,
                   help=f"work pool that runs them (created as a process pool if missing; "
                        f"default {DEFAULT_WORK_POOL})")
    p.set_defaults(handler=deploy_templates)


def deploy_templates(args: argparse.Namespace) -> int:
    require_prefect_api("deployments must go to a running Prefect server")
    cat = catalog()
    refs = args.templates or [str(d) for d in cat.template_dirs()]
    pairs = []
    for ref in refs:
        template = cat.load(ref)
        pairs.append((template, str(template.directory)))
    for deployment in register_template_deployments(pairs, work_pool=args.work_pool):
        print(f"deployed {deployment.name}  (id {deployment.id})")
    print(f"start a worker to run them: prefect worker start --pool {args.work_pool}")
    return 0
