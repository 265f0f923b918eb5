"""Prefect's command line, with one TLS context shared by its API clients.

    .venv/bin/python -m envforge.launch.prefect_cli worker start --pool envforge-process ...

scripts/prefect-local.sh starts the process worker this way: it is ``prefect`` itself (the
same commands, options and exit status), after :func:`share_prefect_tls_context`, so the
worker does not rebuild a CA bundle's context for each client it makes per flow run
(envforge.launch.prefect_tls).
"""

from __future__ import annotations

import sys

from envforge.launch.prefect_tls import share_prefect_tls_context


def main() -> None:
    """Run ``prefect`` with ``sys.argv``'s arguments (it exits as ``prefect`` does)."""
    share_prefect_tls_context()
    from prefect.cli import app

    sys.argv[0] = "prefect"
    app()


if __name__ == "__main__":
    main()
