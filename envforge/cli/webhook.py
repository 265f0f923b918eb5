"""`envforge webhook serve`: start pull-request environments from GitHub/GitLab webhooks."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from envforge.cli.services import cli_services
from envforge.errors import ConfigurationError
from envforge.services import Services
from envforge.webhooks.dispatch import (
    DEFAULT_CREATE_DEPLOYMENT,
    DEFAULT_DESTROY_DEPLOYMENT,
    Dispatcher,
)
from envforge.webhooks.mapping import RepositoryTemplate, TemplateMapping
from envforge.webhooks.server import (
    DEFAULT_HOST,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CONCURRENT,
    DEFAULT_PORT,
    GITHUB_SECRET_ENV,
    GITLAB_TOKEN_ENV,
    WebhookApp,
    WebhookCredentials,
    WebhookServer,
)

SECRETS_BLOCK_ENV = "ENVFORGE_WEBHOOK_SECRETS_BLOCK"


def add_commands(subparsers: Any) -> None:
    group = subparsers.add_parser("webhook", help="pull-request triggers (GitHub, GitLab)")
    commands = group.add_subparsers(dest="webhook_command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve", help="receive pull-request webhooks and start environment deployments")
    serve.add_argument("--host", default=DEFAULT_HOST,
                       help=f"address to listen on (default {DEFAULT_HOST})")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT,
                       help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    serve.add_argument("--mapping", type=Path, metavar="FILE",
                       help="YAML file: repository -> template (see docs/webhooks.md)")
    serve.add_argument("--template", metavar="NAME",
                       help="template for repositories the mapping does not list")
    serve.add_argument("--secrets-block", metavar="NAME",
                       help=f"WebhookSecrets block (default ${SECRETS_BLOCK_ENV}; else "
                            f"${GITHUB_SECRET_ENV} / ${GITLAB_TOKEN_ENV})")
    serve.add_argument("--create-deployment", default=DEFAULT_CREATE_DEPLOYMENT,
                       metavar="FLOW/DEPLOYMENT", help="deployment for opened/updated PRs")
    serve.add_argument("--destroy-deployment", default=DEFAULT_DESTROY_DEPLOYMENT,
                       metavar="FLOW/DEPLOYMENT", help="deployment for closed/merged PRs")
    serve.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES,
                       help=f"larger requests get 413 (default {DEFAULT_MAX_BODY_BYTES})")
    serve.add_argument("--max-concurrent", type=int, default=DEFAULT_MAX_CONCURRENT,
                       help=f"requests handled at once; more get 503 (default "
                            f"{DEFAULT_MAX_CONCURRENT})")
    serve.set_defaults(handler=serve_webhooks)


def load_credentials(secrets_block: str | None, services: Services) -> WebhookCredentials:
    """From the named WebhookSecrets block (default ENVFORGE_WEBHOOK_SECRETS_BLOCK), else
    from the settings' webhook secrets."""
    secrets_block = secrets_block or services.settings.webhooks.secrets_block
    if secrets_block:
        credentials = services.connections.webhook_credentials(secrets_block)
    else:
        credentials = WebhookCredentials.from_settings(services.settings.webhooks)
    if not credentials.enabled:
        raise ConfigurationError(
            f"no webhook secret configured: set {GITHUB_SECRET_ENV} and/or {GITLAB_TOKEN_ENV}, "
            "or name a WebhookSecrets block with --secrets-block"
        )
    return credentials


def build_mapping(mapping_file: Path | None, default_template: str | None) -> TemplateMapping:
    mapping = TemplateMapping.load(mapping_file) if mapping_file else TemplateMapping()
    if default_template:
        mapping.default = RepositoryTemplate(template=default_template)
    if not len(mapping) and mapping.default is None:
        raise ConfigurationError(
            "no template to start: pass --mapping FILE (repository -> template) and/or "
            "--template NAME"
        )
    return mapping


def serve_webhooks(args: argparse.Namespace) -> int:
    from prefect.settings import PREFECT_API_URL

    services = cli_services()
    # The settings first: Prefect reads its own once, when it is first imported.
    if not (services.settings.prefect.api_url or PREFECT_API_URL.value()):
        raise ConfigurationError(
            "PREFECT_API_URL is not set: the webhook server starts deployments on a running "
            "Prefect server (export PREFECT_API_URL=http://127.0.0.1:4200/api)"
        )
    mapping = build_mapping(args.mapping, args.template)
    credentials = load_credentials(args.secrets_block, services)
    dispatcher = Dispatcher(mapping, args.create_deployment, args.destroy_deployment)
    try:
        server = WebhookServer(WebhookApp(credentials, dispatcher), args.host, args.port,
                               args.max_body_bytes, args.max_concurrent)
    except OSError as e:
        raise ConfigurationError(
            f"cannot listen on {args.host}:{args.port} ({e.strerror}); choose another --port"
        ) from None
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}: put TLS (a reverse proxy) in front of it",
              file=sys.stderr)
    print(f"envforge webhooks on {server.url} ({', '.join(credentials.enabled)}): "
          "POST /webhooks/github, /webhooks/gitlab; GET /healthz", flush=True)
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
    print("envforge webhooks stopped", flush=True)
    return 0


def _stop_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (a service manager stopping us) ends serve_forever like Ctrl-C does."""
    raise KeyboardInterrupt
