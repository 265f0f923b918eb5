"""`envforge blocks list|register`: the Prefect Block types where credentials live."""

from __future__ import annotations

import argparse
from typing import Any

from envforge.cli.common import require_prefect_api
from envforge.cli.services import cli_services


def add_commands(subparsers: Any) -> None:
    parser = subparsers.add_parser("blocks", help="list or register envforge's Prefect blocks")
    sub = parser.add_subparsers(dest="blocks_command", metavar="SUBCOMMAND", required=True)
    sub.add_parser("list", help="the block types and what each holds").set_defaults(
        handler=list_blocks)
    sub.add_parser(
        "register", help="register the block types with the Prefect server (for the UI)"
    ).set_defaults(handler=register_blocks)


def list_blocks(args: argparse.Namespace) -> int:
    for block in cli_services().connections.block_types():
        doc = (block.__doc__ or "").strip().splitlines()
        print(f"{block.get_block_type_slug():<24} {doc[0] if doc else ''}")
    return 0


def register_blocks(args: argparse.Namespace) -> int:
    require_prefect_api("block types are registered with a running Prefect server")
    for block in cli_services().connections.block_types():
        block.register_type_and_schema()
        print(f"registered block type {block.get_block_type_slug()}")
    return 0
