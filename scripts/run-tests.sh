#!/usr/bin/env bash
# `make test` / `make test-fast`: the pinned Kubernetes control plane (built once into
# ~/.cache/envforge, started here, stopped on exit by its pids), then pytest against it.
#   scripts/run-tests.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
export PREFECT_SERVER_ANALYTICS_ENABLED=false
if [ -z "${ENVFORGE_TEST_KUBECONFIG:-}" ]; then
    bash scripts/services/kubernetes.sh build >/dev/null
    state="$PWD/.envforge/test-cluster"
    rm -rf "$state"
    trap 'bash scripts/services/kubernetes.sh stop "$state"' EXIT
    bash scripts/services/kubernetes.sh start "$state" >/dev/null
    export ENVFORGE_TEST_KUBECONFIG="$state/kubeconfig"
fi
.venv/bin/pytest "$@"
