#!/usr/bin/env bash
# `make test` / `make test-fast`: the pinned Kubernetes control plane (built once into
# ~/.cache/envforge, started here, stopped on exit by its pids), then pytest against it.
#   scripts/run-tests.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
export PREFECT_SERVER_ANALYTICS_ENABLED=false
if [ -z "${ENVFORGE_TEST_KUBECONFIG:-}" ]; then
    bash scripts/services/kubernetes.sh build >/dev/null
    # A folder of this run's own: two runs side by side never share (or delete) a cluster.
    mkdir -p "$PWD/.envforge"
    state="$(mktemp -d "$PWD/.envforge/test-cluster.XXXXXX")"
    trap 'bash scripts/services/kubernetes.sh stop "$state"; rm -rf "$state"' EXIT
    bash scripts/services/kubernetes.sh start "$state" >/dev/null
    export ENVFORGE_TEST_KUBECONFIG="$state/kubeconfig"
fi
.venv/bin/pytest "$@"
