"""The `envforge` command. Each module in COMMAND_MODULES adds one group of subcommands.

A command module exposes ``add_commands(subparsers)``; each parser it adds sets
``handler=<function(args) -> int>``. Expected failures (EnvforgeError) print one line and exit 1;
usage errors exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from envforge.errors import EnvforgeError, Terminated

COMMAND_MODULES: tuple[str, ...] = (
    "envforge.cli.templates",
    "envforge.cli.actions",
    "envforge.cli.run",
    "envforge.cli.deploy",
    "envforge.cli.blocks",
    "envforge.cli.images",
    "envforge.cli.vars",
    "envforge.cli.env",
    "envforge.cli.db",
    "envforge.cli.webhook",
)


# Command groups whose module is known without importing every module: `envforge db ...`
# then loads only envforge.cli.db (the others import Prefect, kubernetes, httpx: ~1 s).
_GROUP_MODULES = {"db": "envforge.cli.db"}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for every command group, or only the group ``argv`` names when its module is
    known (the other groups are left out of that parser, so they are not imported)."""
    modules = COMMAND_MODULES
    first = next((a for a in (sys.argv[1:] if argv is None else argv)
                  if not a.startswith("-")), None)
    if first in _GROUP_MODULES:
        modules = (_GROUP_MODULES[first],)
    parser = argparse.ArgumentParser(
        prog="envforge",
        description="Ephemeral environments from Backstage-style templates, run as Prefect flows.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    # the composition root: handlers that need connections build the services through this
    parser.set_defaults(make_services=_cli_services)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in modules:
        importlib.import_module(module_name).add_commands(subparsers)
    return parser


def _cli_services() -> Any:
    """envforge.cli.services.cli_services(), imported on first use: building the services
    pulls in settings, capabilities and httpx (~0.3 s), which `envforge db ...` with DSNs and
    `--help` do not need."""
    from envforge.cli.services import cli_services

    return cli_services()


_HANDLER_NAME = "envforge-cli"


def _configure_logging(verbose: bool) -> None:
    """envforge's warnings to stderr. Prefect's records are left to Prefect's own console
    handler (quietened by `run` unless --verbose), so the terminal shows each thing once."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    handler = logging.StreamHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(lambda record: not record.name.startswith("prefect"))
    root.addHandler(handler)
    logging.getLogger("envforge").setLevel(logging.DEBUG if verbose else logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        code: int = args.handler(args)
    except EnvforgeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Terminated as e:
        print(f"error: {e}", file=sys.stderr)
        return 143
    except BrokenPipeError:
        # the reader went away (`envforge ... | head`): stop quietly, as Unix tools do; point
        # stdout at /dev/null so the interpreter's final flush does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    if argv is None and getattr(args, "exit_at_once", False):
        _exit_at_once(code)
    return code


def _exit_at_once(code: int) -> None:
    """End the process now, skipping the interpreter's teardown of every module (0.15-0.3 s
    after a database command, as long as a Pagila-sized dump and restore takes in parts). Only
    for a group that asks for it (``exit_at_once``), and only when main() is the process's
    entry (no argv given): its work is done and closed by then; stdio is flushed first."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
