"""`envforge run NAME|PATH`: run a template as a Prefect flow and show each step's status."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from envforge.cli.common import catalog, parse_values
from envforge.cli.keep_files import catalog_roots, dry_run_keeping_files
from envforge.cli.services import run_template_flow
from envforge.environments.run_records import (
    crash_orphaned_runs,
    forget_flow_run,
    prefect_api_url,
    record_flow_run,
    stop_reporting_handler,
)
from envforge.errors import ConfigurationError, StepFailedError
from envforge.run.run_secrets import parse_secret_assignments
from envforge.run.runner import StepReport
from envforge.services import Services, services_provided
from envforge.templating.parameters import validate_parameters

MARKS = {"completed": "ok", "dry-run": "ok", "faked": "fake", "skipped": "skip",
         "failed": "FAIL", "rolled-back": "undone"}


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser("run", help="run a template (by name or path) as a Prefect flow")
    p.add_argument("template", metavar="NAME|PATH")
    p.add_argument("--set", dest="assignments", action="append", default=[],
                   metavar="KEY=VALUE", help="a parameter value (repeatable; dotted keys nest)")
    p.add_argument("--values", type=Path, metavar="FILE", help="YAML file of parameter values")
    p.add_argument("--dry-run", action="store_true",
                   help="render everything, change nothing; fake outputs of skipped actions")
    p.add_argument("--environment", metavar="NAME", help="environment this run belongs to")
    p.add_argument("--user", metavar="REF", help="who runs it, for ${{ user.ref }} and "
                   "${{ user.entity }} (e.g. user:default/jane; default: ENVFORGE_USER or "
                   "the operating-system user)")
    p.add_argument("--keep-files", type=Path, metavar="DIR",
                   help="with --dry-run: write the run's workspace, as it is at the end, to DIR "
                   "(a new or empty folder); the dry run then runs in this process")
    p.add_argument("--catalog-root", action="append", default=[], metavar="DIR",
                   help="the collection folder that relative '../' fetch URLs may reach "
                   "(default: the enclosing Git checkout, else ENVFORGE_TEMPLATES_PATH)")
    p.add_argument("--secret", dest="secrets", action="append", default=[],
                   metavar="NAME=VALUE|NAME=@FILE",
                   help="a value for ${{ secrets.NAME }} (repeatable; @FILE reads it from a "
                   "file); never a flow parameter, masked in logs and output")
    p.add_argument("--output", choices=["text", "json"], default="text")
    p.set_defaults(handler=run_template_command)


def print_step(report: StepReport) -> None:
    mark = MARKS.get(report.status, report.status)
    line = f"  {mark:<6} {report.id:<20} {report.action:<18} {report.duration_s:6.2f}s"
    if report.reason:
        line += f"  {report.reason}"
    print(line, flush=True)


def run_template_command(args: argparse.Namespace) -> int:
    with catalog_roots(args.catalog_root):  # a settings override for this command only
        return _run_template(args)


def _run_template(args: argparse.Namespace) -> int:
    if args.keep_files is not None and not args.dry_run:
        raise ConfigurationError("--keep-files writes a dry run's files: add --dry-run")
    secrets = parse_secret_assignments(args.secrets)  # before anything is loaded or started
    template = catalog().load(args.template)
    values = parse_values(template, args.assignments, args.values)
    validate_parameters(template, values)  # fail fast, before any Prefect machinery starts
    if secrets:  # handed to the run with the services, never as a flow parameter
        make_services = args.make_services
        args.make_services = lambda: replace(make_services(), run_secrets=secrets)
    if args.user:  # the run's ${{ user }}: the services' settings carry it down
        with_secrets = args.make_services
        args.make_services = lambda: _for_user(with_secrets(), args.user)
    if args.keep_files is not None:
        return _dry_run_keeping_files(args, template, values)

    if not args.verbose:
        # Prefect's own setting, read by its log worker thread when the flow starts (a
        # temporary_settings context would not reach that thread): logs reach the UI sooner
        os.environ.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.3")
    run_template = run_template_flow()

    if not args.verbose:
        _quiet_prefect_console()
    text = args.output == "text"
    if text:
        mode = " (dry run)" if args.dry_run else ""
        print(f"running template {template.name}{mode} from {template.directory}", flush=True)
    # the flow runs in this process: it takes these services (and their progress listener)
    services = args.make_services().with_listeners(*([print_step] if text else []))
    home = services.settings.paths.home
    crashed = crash_orphaned_runs(home)  # left RUNNING by a killed envforge run
    if crashed:
        print(f"marked {len(crashed)} flow run(s) of killed envforge commands crashed: "
              + ", ".join(crashed), file=sys.stderr)
    started: list[str] = []
    interrupt = signal.getsignal(signal.SIGINT)
    run_template = run_template.with_options(on_running=[_recording_hook(home, started)])
    try:
        with services_provided(services):
            result = run_template(
                template=str(template.directory),
                parameters=values,
                dry_run=args.dry_run,
                environment=args.environment,
            )
    except StepFailedError as e:
        if text and e.rollback_failures:
            print(f"failed at step {e.step_id!r}; some completed steps could NOT be undone: "
                  + "; ".join(e.rollback_failures), file=sys.stderr)
        elif text:
            print(f"failed at step {e.step_id!r}; every completed step was undone",
                  file=sys.stderr)
        raise
    finally:
        signal.signal(signal.SIGINT, interrupt)
        for flow_run_id in started:
            forget_flow_run(home, flow_run_id)
    if not text:
        print(json.dumps(result, indent=2, default=str))
        return 0
    _print_unknown_actions(result)
    _print_output(result, services.settings.prefect.api_url)
    return 0


def _for_user(services: Services, user: str) -> Services:
    """``services`` whose settings name ``user`` as the caller (ENVFORGE_USER's field)."""
    settings = services.settings
    runner = settings.runner.model_copy(update={"user": user})
    return replace(services, settings=settings.model_copy(update={"runner": runner}))


def _recording_hook(home: Path, started: list[str]) -> Any:
    """Prefect's on_running hook for the in-process run: record the flow run with this
    process's identity (so a kill -9 is found later), and report SIGTERM/SIGINT to Prefect
    as the run's end (envforge.environments.run_records)."""

    def on_running(flow: Any, flow_run: Any, state: Any) -> None:
        flow_run_id = str(flow_run.id)
        started.append(flow_run_id)
        api_url = prefect_api_url()
        if api_url:
            record_flow_run(home, flow_run_id, api_url)
        if threading.current_thread() is threading.main_thread():
            handler = stop_reporting_handler(flow_run_id)
            signal.signal(signal.SIGTERM, handler)
            signal.signal(signal.SIGINT, handler)

    return on_running


def _dry_run_keeping_files(args: argparse.Namespace, template: Any,
                           values: dict[str, Any]) -> int:
    """``--dry-run --keep-files DIR``: the dry run in this process, its workspace kept."""
    text = args.output == "text"
    if text:
        print(f"running template {template.name} (dry run, files kept in {args.keep_files}) "
              f"from {template.directory}", flush=True)
    result, files = dry_run_keeping_files(
        template, values, args.keep_files, services=args.make_services(),
        environment={"name": args.environment} if args.environment else {},
        listener=print_step if text else None)
    if not text:
        print(json.dumps({**result, "kept_files": files}, indent=2, default=str))
        return 0
    _print_unknown_actions(result)
    print(f"{len(files)} file(s) written to {args.keep_files}")
    return 0


def _print_unknown_actions(result: dict[str, Any]) -> None:
    """A dry run skips actions envforge does not have; say which, once, at the end."""
    unknown = [f"{s['action']} (step {s['id']!r})" for s in result.get("steps") or []
               if str(s.get("reason") or "").startswith("unknown action")]
    if unknown:
        print(f"dry run: {len(unknown)} step(s) use actions envforge does not have and were "
              f"skipped with placeholder outputs: {', '.join(unknown)}; a real run refuses "
              "to start until they exist")


def _print_output(result: dict[str, Any], api: str | None) -> None:
    """The run's links and texts, and where its flow run can be seen (``api``: the settings'
    PREFECT_API_URL)."""
    output = result.get("output") or {}
    links = output.get("links") or []
    if links:
        print("links:")
        for link in links:
            print(f"  {link.get('title') or '-'}: {link.get('url', '')}")
    for text in output.get("text") or []:
        print(f"{text.get('title') or 'note'}:\n  {text.get('content', '')}")
    where = (f"Prefect UI: {api.removesuffix('/api')}/runs/flow-run/{result['run_id']}"
             if api else "ran on a temporary Prefect server (set PREFECT_API_URL to keep runs)")
    print(where)


def _quiet_prefect_console() -> None:
    """Prefect's console log repeats what print_step shows; keep it to real problems."""
    from prefect.logging.handlers import PrefectConsoleHandler

    names = ["prefect", *[n for n in logging.Logger.manager.loggerDict if n.startswith("prefect")]]
    for name in names:
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, PrefectConsoleHandler):
                handler.setLevel(logging.CRITICAL)
