#!/usr/bin/env bash
# `make test` / `make test-fast`: the pinned Kubernetes control plane and the real Argo CD
# (application controller, repo server, Redis) beside it (built once into ~/.cache/envforge,
# started here, stopped on exit by their pids), then pytest against them. The tests share that
# one Argo CD (ENVFORGE_TEST_ARGOCD, see tests/argocd.py).
# pytest runs in ENVFORGE_TEST_WORKERS parallel workers (pytest-xdist, default 3; 0 runs in this
# process): most of the suite waits on services (Prefect, Argo CD, PostgreSQL, git), so three
# workers pay off on two cores. Every worker attaches to the one control plane and Argo CD
# started here; its other services (Prefect, PostgreSQL, registry, OpenBao) are its own session
# fixtures on free ports, and tests name what they create in the cluster uniquely.
# `--dist loadgroup`: the tests of the session's Argo CD run on one worker, a module with a
# module-scoped fixture on one worker (tests/conftest.py, xdist_group_of).
#   scripts/run-tests.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
export PREFECT_SERVER_ANALYTICS_ENABLED=false
# The suite runs against services of its own. A shell that sourced .envforge/demo/env.sh, or
# points at a real deployment, carries variables that would send tests to those: the demo's
# Prefect server, your Vault, database or cluster. They are cleared; a cluster or a Vault of your
# own for the tests is named explicitly (ENVFORGE_TEST_KUBECONFIG, ENVFORGE_TEST_VAULT_ADDR and
# ENVFORGE_TEST_VAULT_TOKEN).
unset ENVFORGE_HOME ENVFORGE_GITOPS_URL ENVFORGE_TEMPLATES_PATH PREFECT_API_URL PREFECT_HOME \
      KUBECONFIG PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE VAULT_ADDR VAULT_TOKEN \
      ENVFORGE_IMAGE_SOURCES
workers="${ENVFORGE_TEST_WORKERS:-3}"
case "$workers" in
    0) parallel=() ;;
    [1-9]|[1-9][0-9]) parallel=(-n "$workers" --dist loadgroup) ;;
    *) echo "run-tests.sh: ENVFORGE_TEST_WORKERS is '$workers': give a number of workers (0: no workers)" >&2
       exit 2 ;;
esac
state=""
cleanup() {
    [ -n "$state" ] || return 0
    [ -d "$state/argocd" ] && bash scripts/services/argocd.sh stop "$state/argocd"
    bash scripts/services/kubernetes.sh stop "$state"
    rm -rf "$state"
}
trap cleanup EXIT
if [ -z "${ENVFORGE_TEST_KUBECONFIG:-}" ]; then
    bash scripts/services/kubernetes.sh build >/dev/null
    bash scripts/services/argocd.sh build >/dev/null
    # A folder of this run's own: two runs side by side never share (or delete) a cluster.
    mkdir -p "$PWD/.envforge"
    state="$(mktemp -d "$PWD/.envforge/test-cluster.XXXXXX")"
    bash scripts/services/kubernetes.sh start "$state" >/dev/null
    export ENVFORGE_TEST_KUBECONFIG="$state/kubeconfig"
    # Argo CD's own Ingress health check: the cluster's ingress controller part (kwok's stage,
    # or Traefik on a real node) writes the load-balancer address it waits for.
    bash scripts/services/argocd.sh start "$state/argocd" "$state/kubeconfig" >/dev/null
    export ENVFORGE_TEST_ARGOCD="$state/argocd"
fi
.venv/bin/pytest "${parallel[@]}" "$@"
