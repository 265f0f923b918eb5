"""`envforge image build REPO --ref REF`: build and push an application image from a Git ref
(the same code path as the image:build action), printing the image by digest."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from envforge.cli.services import cli_services
from envforge.errors import EnvforgeError
from envforge.images.build import (
    ImageBuildSpec,
    build_image,
    default_builder,
    resolve_git_auth,
    resolve_registry,
    source_cache,
)


def add_commands(subparsers: Any) -> None:
    image = subparsers.add_parser("image", help="build application images from Git refs")
    commands = image.add_subparsers(dest="image_command", metavar="COMMAND", required=True)
    p = commands.add_parser("build", help="build REPO at --ref and push it (cached by commit)")
    p.add_argument("repo", metavar="REPO", help="Git URL or path of the application repository")
    p.add_argument("--ref", default="main",
                   help="branch, tag, pull/N/head or commit (default: main)")
    p.add_argument("--app", help="image name (default: the repository's name)")
    p.add_argument("--stack", help="stack template when the repository has no Dockerfile")
    p.add_argument("--dockerfile", help="Dockerfile path inside the repository")
    p.add_argument("--context", default=".", help="build context inside the repository")
    p.add_argument("--base-image", help="base image of a generated Dockerfile")
    p.add_argument("--build-arg", dest="build_args", action="append", default=[],
                   metavar="KEY=VALUE", help="build argument (repeatable)")
    p.add_argument("--registry", help="registry address (default: ENVFORGE_REGISTRY)")
    p.add_argument("--registry-block", help="name of a ContainerRegistry block")
    p.add_argument("--insecure", action="store_true",
                   help="with --registry: skip TLS verification, allow plain HTTP")
    p.add_argument("--git-credentials-block", help="name of a GitCredentials block")
    p.add_argument("--output", choices=["text", "json"], default="text")
    p.set_defaults(handler=build_command)


def _build_args(pairs: list[str]) -> dict[str, str]:
    args: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise EnvforgeError(f"--build-arg {pair!r}: expected KEY=VALUE")
        args[key] = value
    return args


def build_command(args: argparse.Namespace) -> int:
    repo = args.repo
    if "://" not in repo and not repo.startswith("git@"):
        local = Path(repo).expanduser()
        if local.exists():
            repo = local.resolve().as_uri()
    spec = ImageBuildSpec(repo_url=repo, ref=args.ref, app=args.app, stack=args.stack,
                          dockerfile=args.dockerfile, context=args.context,
                          build_args=_build_args(args.build_args), base_image=args.base_image)
    services = cli_services()
    registry = resolve_registry(args.registry_block, args.registry, not args.insecure,
                                services=services)
    logger = logging.getLogger("envforge.images")
    if args.output == "text" and not args.verbose:
        _show_progress(logger)
    built = build_image(spec, registry, default_builder(services.settings),
                        source_cache(services.settings), logger,
                        git_auth=resolve_git_auth(args.git_credentials_block,
                                                  services.connections))
    if args.output == "json":
        print(json.dumps({"image": built.image, "imageTag": built.tagged,
                          "digest": built.digest, "commit": built.commit,
                          "cached": built.cached, "reusedFrom": built.reused_from,
                          "stack": built.stack,
                          "dockerfile": built.dockerfile, "timings": built.timings}, indent=2))
        return 0
    state = ("cached, not rebuilt" if built.cached
             else f"reused from {built.reused_from}" if built.reused_from
             else f"built in {built.timings['total']:.1f}s")
    print(f"{built.image}\n  tag {built.tagged} ({state}; {built.dockerfile})")
    return 0


def _show_progress(logger: logging.Logger) -> None:
    """Build output on stderr as it comes (main() shows warnings only unless -v)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
