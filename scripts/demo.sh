#!/usr/bin/env bash
# `make demo`: the main job on embedded defaults. A local Prefect server (SQLite) and process
# worker, the templates registered as run buttons, and two services scaffolded into a local bare
# GitOps repository: one from the CLI, one through its deployment's run button (as the Prefect
# UI's "Run" does), executed by the worker. Then the preview environment pr-1, which the real
# Argo CD (scripts/services/argocd.sh) applies from that repository to a real Kubernetes API
# server (scripts/services/kubernetes.sh), its secret read from OpenBao; then pr-1 is put to
# sleep and woken through Git, timed. .envforge/demo/env.sh points a shell at all of it.
set -euo pipefail
cd "$(dirname "$0")/.."

export ENVFORGE_HOME="$PWD/.envforge/demo"
export PREFECT_PORT="${PREFECT_PORT:-4200}"
export PREFECT_API_URL="http://127.0.0.1:$PREFECT_PORT/api"
export PREFECT_HOME="$PWD/.envforge/prefect"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
unset ENVFORGE_GITOPS_URL ENVFORGE_TEMPLATES_PATH  # embedded defaults only
# image:build may read network repositories and, on this machine, the demo's own applications
# (a template may never build from anywhere else on the worker's disk: docs/security.md)
export ENVFORGE_IMAGE_SOURCES="https:// ssh:// git@ file://$PWD/.envforge/demo/apps/"
PATH="$PWD/.venv/bin:$PATH"
GITOPS="$ENVFORGE_HOME/gitops.git"

step() { printf '\n==> %s\n' "$*"; }

step "Starting PostgreSQL, the image registry, the Kubernetes control plane with Argo CD, OpenBao"
eval "$(bash scripts/demo-services.sh start)"
KUBECTL="$(bash scripts/services/kubernetes.sh version | tail -1)/kubectl"
echo "PostgreSQL on $PGPORT, registry $DEMO_REGISTRY, OpenBao (Vault API) $VAULT_ADDR"
echo "Kubernetes $("$KUBECTL" --kubeconfig "$KUBECONFIG" version -o json | python -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])') at $(grep -m1 'server:' "$KUBECONFIG" | awk '{print $2}'), KUBECONFIG .envforge/demo/kubeconfig"
# One line for a shell of your own: every command printed at the end works after it.
cat >"$ENVFORGE_HOME/env.sh" <<ENV
# source .envforge/demo/env.sh  (written by make demo): the demo's envforge, Prefect and cluster
export ENVFORGE_HOME=$ENVFORGE_HOME
export PREFECT_API_URL=$PREFECT_API_URL PREFECT_HOME=$PREFECT_HOME
export KUBECONFIG=$KUBECONFIG
export PGHOST=$PGHOST PGPORT=$PGPORT PGUSER=$PGUSER
export VAULT_ADDR=$VAULT_ADDR VAULT_TOKEN=$VAULT_TOKEN
export ENVFORGE_IMAGE_SOURCES="$ENVFORGE_IMAGE_SOURCES"
unset ENVFORGE_GITOPS_URL ENVFORGE_TEMPLATES_PATH
ENV

step "Starting the local Prefect server, a warm runner and a process worker (they see the services above)"
bash scripts/prefect-local.sh start

step "Validating every template (envforge templates validate templates/*)"
envforge templates validate templates/*

step "Registering a run button per template (envforge deploy)"
envforge deploy

step "Scaffolding 'demo-api' from the CLI (envforge run python-service --set name=demo-api)"
envforge run python-service --set name=demo-api --set description="Demo API from make demo"

step "Scaffolding 'demo-web' through its run button (a flow run of deployment scaffold/node-service)"
timeout 300 prefect deployment run scaffold/node-service \
  --param name=demo-web --param replicas=2 --watch --watch-timeout 240 | tail -3

step "Deploying the lifecycle flows (prefect deploy --all) and registering the block types"
# prefect.yaml holds the process-worker deployments only; the Kubernetes profile is
# deploy/prefect-kubernetes.yaml (docs/architecture.md, "Scale-out"), which the demo does not use
ENVFORGE_PROJECT_DIR="$PWD" prefect --no-prompt deploy --all >/dev/null
envforge blocks register >/dev/null
prefect deployment ls 2>/dev/null | grep -E "environment|reap|refresh|bind|template" | head -12 || true

step "A preview environment with everything: image build, anonymised clone of production, Vault secret"
if envforge env destroy pr-1 >/dev/null 2>&1; then   # a second `make demo` starts afresh:
  # the app-of-apps (allowEmpty: pr-1 was the last environment) prunes the old pr-1, whose
  # finalizer deletes its namespace: Terminating until emptied, then gone
  "$KUBECTL" --kubeconfig "$KUBECONFIG" wait --for=delete application/pr-1 -n argocd --timeout=180s >/dev/null 2>&1 || true
  "$KUBECTL" --kubeconfig "$KUBECONFIG" wait --for=delete namespace/pr-1 --timeout=180s >/dev/null 2>&1 || true
fi
python scripts/demo_environment.py
envforge env list

step "pr-1 in the cluster: applied by Argo CD to the real API server"
"$KUBECTL" --kubeconfig "$KUBECONFIG" wait --for=jsonpath='{.status.sync.status}'=Synced application/pr-1 -n argocd --timeout=180s >/dev/null
"$KUBECTL" --kubeconfig "$KUBECONFIG" wait --for=jsonpath='{.status.health.status}'=Healthy application/pr-1 -n argocd --timeout=180s >/dev/null
"$KUBECTL" --kubeconfig "$KUBECONFIG" get application -n argocd pr-1 \
  -o custom-columns='APPLICATION:.metadata.name,SYNC:.status.sync.status,HEALTH:.status.health.status,REVISION:.status.sync.revision,LAST SYNC:.status.operationState.message'
"$KUBECTL" --kubeconfig "$KUBECONFIG" get namespace pr-1
"$KUBECTL" --kubeconfig "$KUBECONFIG" get deployment,service,ingress,secret -n pr-1
envforge env status pr-1

step "A change through Git reaching the cluster: pr-1 to sleep and awake again (envforge asks Argo CD to refresh after each commit)"
DEPLOYMENT=$("$KUBECTL" --kubeconfig "$KUBECONFIG" get deployment -n pr-1 -o jsonpath='{.items[0].metadata.name}')
replicas() { "$KUBECTL" --kubeconfig "$KUBECONFIG" get deployment -n pr-1 "$DEPLOYMENT" -o jsonpath='{.spec.replicas}'; }
t0=$(date +%s.%N)
envforge env sleep pr-1 >/dev/null
for _ in $(seq 1 600); do [ "$(replicas)" = 0 ] && break; sleep 0.1; done
t1=$(date +%s.%N)
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }
printf 'sleep: committed, and deployment %s scaled to %s replicas by Argo CD %s s after the command started\n' \
  "$DEPLOYMENT" "$(replicas)" "$(seconds "$t1" "$t0")"
t1=$(date +%s.%N)
envforge env wake pr-1 >/dev/null
for _ in $(seq 1 600); do [ "$(replicas)" != 0 ] && break; sleep 0.1; done
"$KUBECTL" --kubeconfig "$KUBECONFIG" rollout status deployment -n pr-1 "$DEPLOYMENT" --timeout=120s >/dev/null
"$KUBECTL" --kubeconfig "$KUBECONFIG" wait --for=jsonpath='{.status.health.status}'=Healthy application/pr-1 -n argocd --timeout=120s >/dev/null
printf 'wake: committed, and %s replica(s) rolled out, the Application Healthy, %s s after the command started\n' \
  "$(replicas)" "$(seconds "$(date +%s.%N)" "$t1")"
"$KUBECTL" --kubeconfig "$KUBECONFIG" get application -n argocd pr-1 \
  -o custom-columns='APPLICATION:.metadata.name,SYNC:.status.sync.status,HEALTH:.status.health.status,REVISION:.status.sync.revision'

step "Result"
echo "GitOps repository (a local bare repository): $GITOPS"
echo "  latest commits:"
git --git-dir "$GITOPS" log --format='    %h %s (%an, %ar)' -5 main
echo "  files per service:"
git --git-dir "$GITOPS" ls-tree -r --name-only main | awk -F/ '{print "    " $1 "/" $2}' | sort | uniq -c
cat <<TXT

Look around (first, in your shell, from this folder):
  source .envforge/demo/env.sh
  Prefect UI (flow runs, task run per step, run buttons with the templates' forms):
      http://127.0.0.1:$PREFECT_PORT
  The rendered files:   git clone $GITOPS /tmp/gitops && ls /tmp/gitops/services/*
  Try a template:       .venv/bin/envforge templates show java-service
                        .venv/bin/envforge run java-service --set name=demo-jvm --dry-run
  The environment:      .venv/bin/envforge env show pr-1
                        .venv/bin/envforge env status pr-1
                        its summary: Prefect UI > Artifacts > env-pr-1
  In the cluster:       $KUBECTL --kubeconfig .envforge/demo/kubeconfig get all,ingress,secret -n pr-1
                        $KUBECTL --kubeconfig .envforge/demo/kubeconfig get application -n argocd
  Destroy it:           .venv/bin/prefect deployment run destroy-environment/destroy-environment --param name=pr-1
                        (or .venv/bin/envforge env destroy pr-1)
  Stop everything (server, warm runner, worker, PostgreSQL, registry, control plane, Argo CD, OpenBao):   make stop
TXT

step "pr-1's URL, through the ingress controller"
# Only a real node runs containers (ENVFORGE_NODE=real make demo: scripts/services/node.sh and
# ingress.sh); with kwok nothing listens behind the URL. pr-1 reaches its database at the node's
# gateway: node.sh expose lets the node's pods reach PostgreSQL's port there.
KUBE_STATE="$ENVFORGE_HOME/kube"
if [ "$(cat "$KUBE_STATE/node-kind" 2>/dev/null)" = real ] && [ -f "$KUBE_STATE/ingress/port" ]; then
  ENVFORGE_EXPOSE_SOURCE="$DEMO_POD_SOURCE" bash scripts/services/node.sh expose "$KUBE_STATE" "$PGPORT" >/dev/null
  PR1_HOST="$("$KUBECTL" --kubeconfig "$KUBECONFIG" get ingress -n pr-1 -o jsonpath='{.items[0].spec.rules[0].host}')"
  PR1_CURL=(curl -sS --max-time 20 -H "Host: $PR1_HOST" -w '\nHTTP %{http_code}\n'
            "http://127.0.0.1:$(cat "$KUBE_STATE/ingress/port")/")
  # Traefik routes the host once it has seen the woken pod's endpoints (a second or two after
  # the rollout): wait for that, bounded, before the curl shown
  for _ in $(seq 1 30); do
    [ "$("${PR1_CURL[@]}" -o /dev/null 2>/dev/null | tail -1)" = "HTTP 404" ] || break
    sleep 1
  done
  printf '$'; printf ' %q' "${PR1_CURL[@]}"; echo
  "${PR1_CURL[@]}" || echo "pr-1 did not answer (see: envforge env status pr-1)"
else
  echo "The cluster's node is kwok (pods are marked Running, no container runs): pr-1's URL"
  echo "answers with a real node: ENVFORGE_NODE=real make demo (the default when run as root)"
fi
