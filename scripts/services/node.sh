#!/usr/bin/env bash
# A real Kubernetes node beside the control plane of kubernetes.sh: containerd (Debian's 1.6)
# + runc + the CNI plugins (bridge, host-local, portmap, loopback from Debian's
# containernetworking-plugins) + the kubelet and kube-proxy built from the same pinned
# k8s.io/kubernetes module as the control plane. All state is under DIR/node.
#
#   node.sh start DIR KUBECONFIG   start the node for the cluster of KUBECONFIG (admin; the CA
#                                  key beside its certificate-authority signs the node's client
#                                  certificates); waits until the Node is Ready
#   node.sh stop DIR               kill the pods' containers, stop what start started, remove
#                                  the node's network namespace, cgroups and mounts
#   node.sh expose DIR PORT...     let the node's pods reach 127.0.0.1:PORT of this machine at
#                                  the node's gateway, GATEWAY:PORT (prints GATEWAY)
#
# Why a network namespace: kube-proxy owns the KUBE-* iptables chains of the namespace it runs
# in, so two nodes on one machine (two test runs side by side) must not share one. Each node
# takes a free slot K (1..250) and gets:
#   - network namespace efnode-K holding the pods' bridge cni0 (pod CIDR 10.244.K.0/24) and
#     kube-proxy's rules, linked to this machine by the veth pair efhK (10.250.K.1, this
#     machine's side, the node's InternalIP) / eth0 (10.250.K.2, the namespace's side);
#   - a route 10.244.K.0/24 via 10.250.K.2, so the kubelet's probes and the ingress controller
#     (on this machine) reach pod IPs;
#   - DNAT, on efhK only, from 10.250.K.1:PORT to 127.0.0.1:PORT for the API server's port, the
#     ports in $ENVFORGE_NODE_HOST_PORTS and those of `expose` (e.g. PostgreSQL): how pods and
#     kube-proxy reach this machine's loopback services without any of them listening
#     elsewhere.
# containerd and the kubelet run in this machine's namespace (they pull from the registry on
# 127.0.0.1 and talk to the API server there); containerd calls the bridge and portmap plugins
# through two-line wrappers that enter efnode-K. The kubelet's cgroups live under /envforge-K.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
NODE_NAME="${ENVFORGE_NODE_NAME:-envforge-node-1}"
SERVICE_CIDR="10.0.0.0/24"   # kube-apiserver --service-cluster-ip-range in kubernetes.sh
PAUSE_VERSION="3.10.2"       # k8s.io/kubernetes build/pause at the pinned version
SANDBOX_IMAGE="registry.k8s.io/pause:$PAUSE_VERSION"
CNI_PLUGINS="${ENVFORGE_CNI_PLUGINS:-/usr/lib/cni}"


bin_dir() { bash "$HERE/kubernetes.sh" version | tail -1; }

kubeconfig_field() {  # KUBECONFIG key -> value of the first "key:" line
    awk -v k="$2:" '$1 == k {print $2; exit}' "$1"
}

# --- slot and network ---------------------------------------------------------------------

take_slot() {  # prints a free K, marking it used by creating its namespace (under a lock)
    mkdir -p /run/lock
    exec 9>/run/lock/envforge-node.lock
    flock 9
    local k
    for k in $(seq 1 250); do
        [ -e "/run/netns/efnode-$k" ] && continue
        ip link show "efh$k" >/dev/null 2>&1 && continue
        ip netns add "efnode-$k"
        flock -u 9
        echo "$k"
        return 0
    done
    flock -u 9
    die "no free node slot (efnode-1..250 all exist: stop old runs, or ip netns del them)"
}

nat_chain() { echo "EFNODE-$1"; }

setup_network() {  # K
    local k=$1 ns="efnode-$1" hif="efh$1" chain
    chain="$(nat_chain "$k")"
    ip link add "$hif" type veth peer name eth0 netns "$ns"
    ip addr add "10.250.$k.1/30" dev "$hif"
    ip link set "$hif" up
    ip -n "$ns" addr add "10.250.$k.2/30" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" route add default via "10.250.$k.1"
    ip route add "10.244.$k.0/24" via "10.250.$k.2" dev "$hif"
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
    # Packets from the node arriving on efhK may be DNATed to 127.0.0.1 (only on this link).
    sysctl -qw "net.ipv4.conf.$hif.route_localnet=1"
    iptables -w -t nat -N "$chain"
    iptables -w -t nat -A PREROUTING -i "$hif" -j "$chain"
    iptables -w -t nat -N "$chain-IN"
    iptables -w -t nat -A INPUT -i "$hif" -j "$chain-IN"
    expose_ports "$k" "$API_PORT" ${ENVFORGE_NODE_HOST_PORTS:-}
}

# 10.250.K.1:PORT -> 127.0.0.1:PORT for the node (pods, kube-proxy), with the source rewritten
# to a loopback address too: the service sees a local client and nothing listens anywhere but
# on loopback. The source is 127.0.0.1 unless ENVFORGE_EXPOSE_SOURCE names another loopback
# address: the demo's PostgreSQL sees its pods as 127.0.0.2, so its pg_hba can ask them for a
# SCRAM password while the tools on this machine (127.0.0.1, the socket) keep trust.
expose_ports() {  # K PORT...
    local k=$1 chain port source="${ENVFORGE_EXPOSE_SOURCE:-127.0.0.1}"
    [[ "$source" =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "not a loopback address: $source"
    chain="$(nat_chain "$k")"; shift
    for port in "$@"; do
        iptables -w -t nat -C "$chain" -d "10.250.$k.1" -p tcp --dport "$port" \
            -j DNAT --to-destination "127.0.0.1:$port" 2>/dev/null \
          || iptables -w -t nat -A "$chain" -d "10.250.$k.1" -p tcp --dport "$port" \
               -j DNAT --to-destination "127.0.0.1:$port"
        # first in the chain: a port exposed again with another source takes the new one
        iptables -w -t nat -C "$chain-IN" -d 127.0.0.1 -p tcp --dport "$port" \
            -j SNAT --to-source "$source" 2>/dev/null \
          || iptables -w -t nat -I "$chain-IN" 1 -d 127.0.0.1 -p tcp --dport "$port" \
               -j SNAT --to-source "$source"
    done
}

teardown_network() {  # K
    local k=$1 chain
    chain="$(nat_chain "$k")"
    iptables -w -t nat -D PREROUTING -i "efh$k" -j "$chain" 2>/dev/null || true
    iptables -w -t nat -D INPUT -i "efh$k" -j "$chain-IN" 2>/dev/null || true
    local c
    for c in "$chain" "$chain-IN"; do
        iptables -w -t nat -F "$c" 2>/dev/null || true
        iptables -w -t nat -X "$c" 2>/dev/null || true
    done
    ip link del "efh$k" 2>/dev/null || true   # its peer eth0 and the route go with it
    ip netns del "efnode-$k" 2>/dev/null || true
}

# --- files ---------------------------------------------------------------------------------

sign_client_cert() {  # name CN O -> NODE/pki/name.{crt,key}
    local name=$1 cn=$2 org=$3 pki="$NODE/pki"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn/O=$org" \
        -keyout "$pki/$name.key" -out "$pki/$name.csr" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >"$pki/$name.ext"
    openssl x509 -req -in "$pki/$name.csr" -CA "$CA_CRT" -CAkey "$CA_KEY" -CAcreateserial \
        -days 365 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
    chmod 600 "$pki/$name.key"
}

write_kubeconfig() {  # file server cert-name [tls-server-name]
    local file=$1 server=$2 name=$3 sni=${4:-}
    {
        echo "apiVersion: v1"
        echo "kind: Config"
        echo "clusters:"
        echo "- name: envforge"
        echo "  cluster:"
        echo "    server: $server"
        echo "    certificate-authority: $CA_CRT"
        [ -z "$sni" ] || echo "    tls-server-name: $sni"
        echo "users:"
        echo "- name: $name"
        echo "  user: {client-certificate: $NODE/pki/$name.crt, client-key: $NODE/pki/$name.key}"
        echo "contexts:"
        echo "- name: envforge"
        echo "  context: {cluster: envforge, user: $name}"
        echo "current-context: envforge"
    } >"$file"
    chmod 600 "$file"
}

write_containerd_config() {
    local snapshotter=$1
    mkdir -p "$NODE/containerd" "$NODE/certs.d"
    cat >"$NODE/containerd.toml" <<TOML
# containerd 1.6 (config version 2) for one envforge node: its own root, state and socket.
version = 2
root = "$NODE/containerd/root"
state = "$NODE/containerd/state"
disabled_plugins = ["io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "$NODE/containerd.sock"

[ttrpc]
  address = "$NODE/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$NODE/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$SANDBOX_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # This machine withholds CAP_SYS_RESOURCE even from root, so no process may lower its
  # oom_score_adj (the kubelet asks -998 for sandboxes): containerd clamps to its own instead.
  restrict_oom_score_adj = true
  max_container_log_line_size = 16384

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "$snapshotter"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$NODE/runc"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$NODE/cni/bin"
    conf_dir = "$NODE/cni/net.d"
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry]
    # One directory per registry host, each with a hosts.toml (write_registry_hosts).
    config_path = "$NODE/certs.d"
TOML
}

# The local registries are plain HTTP: each gets a hosts.toml saying so (containerd would also
# fall back to HTTP for a loopback host by itself, but the trust is written down here).
write_registry_hosts() {
    local reg
    for reg in ${ENVFORGE_NODE_REGISTRIES:-}; do
        mkdir -p "$NODE/certs.d/$reg"
        cat >"$NODE/certs.d/$reg/hosts.toml" <<TOML
server = "http://$reg"

[host."http://$reg"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
TOML
    done
}

write_cni() {  # K
    local k=$1 plugin
    mkdir -p "$NODE/cni/bin" "$NODE/cni/net.d" "$NODE/cni/ipam"
    for plugin in bridge portmap; do   # these change the node's namespace: run them inside it
        printf '#!/bin/sh\nexec nsenter --net=/run/netns/efnode-%s %s/%s "$@"\n' \
            "$k" "$CNI_PLUGINS" "$plugin" >"$NODE/cni/bin/$plugin"
        chmod 755 "$NODE/cni/bin/$plugin"
    done
    for plugin in host-local loopback; do
        ln -sf "$CNI_PLUGINS/$plugin" "$NODE/cni/bin/$plugin"
    done
    cat >"$NODE/cni/net.d/10-envforge.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "envforge",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "10.244.$k.0/24"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$NODE/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
  ]
}
JSON
}

write_kubelet_config() {  # K
    local k=$1
    mkdir -p "$NODE/kubelet" "$NODE/pod-logs"
    cat >"$NODE/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 10.250.$k.1
port: 10250
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $CA_CRT}
# Only holders of a certificate of the cluster's CA get in (the API server's); they may do
# anything (no webhook round trip for each log or exec).
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://$NODE/containerd.sock
imageServiceEndpoint: unix://$NODE/containerd.sock
# This machine mounts the cgroup v1 hierarchies; kubelet >= 1.35 refuses them unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /envforge-$k
cgroupsPerQOS: true
failSwapOn: false
memorySwap: {swapBehavior: NoSwap}
podLogsDir: $NODE/pod-logs
resolvConf: ""
clusterDomain: cluster.local
maxPods: 110
serializeImagePulls: false
# A shared 2-core sandbox: evict only when truly out of memory or disk, and never GC images
# behind a test's back.
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# Fast feedback for tests (status, pod lifecycle, restarts).
nodeStatusUpdateFrequency: 5s
nodeStatusReportFrequency: 30s
syncFrequency: 10s
fileCheckFrequency: 5s
shutdownGracePeriod: 0s
registerNode: true
rotateCertificates: false
serverTLSBootstrap: false
protectKernelDefaults: false
makeIPTablesUtilChains: false
localStorageCapacityIsolation: true
YAML
}

write_kube_proxy_config() {  # K
    local k=$1
    cat >"$NODE/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $NODE/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
clusterCIDR: 10.244.$k.0/24
bindAddress: 10.250.$k.2
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Pod -> Service -> pod on the same bridge: without br_netfilter the answer would skip the
# DNAT's reverse; masquerading every Service connection routes the answer back through it.
iptables: {masqueradeAll: true, syncPeriod: 10s, minSyncPeriod: 1s}
# The conntrack table is the machine's, not this namespace's: leave its sizes alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
nodePortAddresses: ["10.250.$k.2/32"]
YAML
}

# The pod sandbox ("pause") image: the pinned module's own build/pause/linux/pause.c, compiled
# statically, in a one-layer image built with buildah; imported into containerd (no registry
# or internet needed). Built once into the tools cache.
pause_image() {
    local images out
    images="$(dirname "$(bin_dir)")/images"
    out="$images/pause-$PAUSE_VERSION.tar"
    if [ ! -s "$out" ]; then
        log "building the pause image $SANDBOX_IMAGE (once)"
        local src ctx store ctr_id
        src="$(go env GOMODCACHE)/k8s.io/kubernetes@$(bash "$HERE/kubernetes.sh" version | head -1 | awk '{print $2}' | tr -d ,)/build/pause/linux/pause.c"
        [ -f "$src" ] || die "pause.c not found at $src (run kubernetes.sh build first)"
        ctx="$(mktemp -d)"; store="$images/buildah"
        mkdir -p "$images"
        gcc -Os -static -Wall -Werror -DVERSION="v$PAUSE_VERSION" -o "$ctx/pause" "$src"
        strip "$ctx/pause"
        local bh=(buildah --root "$store/root" --runroot "$store/run" --storage-driver vfs)
        ctr_id="$("${bh[@]}" from scratch)"
        "${bh[@]}" copy "$ctr_id" "$ctx/pause" /pause >/dev/null
        "${bh[@]}" config --entrypoint '["/pause"]' --user 65535:65535 "$ctr_id"
        "${bh[@]}" commit -q "$ctr_id" "docker-archive:$out.tmp:$SANDBOX_IMAGE" >/dev/null
        "${bh[@]}" rm "$ctr_id" >/dev/null
        mv "$out.tmp" "$out"
        rm -rf "$ctx"
    fi
    echo "$out"
}

pick_snapshotter() {  # overlayfs when this machine can mount it over NODE, else native
    local t
    t="$(mktemp -d "$NODE/.overlay-test.XXXX")"
    mkdir -p "$t/l" "$t/u" "$t/w" "$t/m"
    if mount -t overlay overlay -o "lowerdir=$t/l,upperdir=$t/u,workdir=$t/w" "$t/m" 2>/dev/null; then
        umount "$t/m"; rm -rf "$t"; echo overlayfs
    else
        rm -rf "$t"; echo native
    fi
}

# --- start / stop --------------------------------------------------------------------------

cmd_start() {
    local kubeconfig=$1
    [ -f "$kubeconfig" ] || die "no kubeconfig at $kubeconfig (start the control plane first)"
    [ "$(id -u)" -eq 0 ] || die "the node needs root (network namespaces, cgroups, mounts)"
    local tool
    for tool in containerd containerd-shim-runc-v2 runc ctr iptables nsenter buildah gcc; do
        command -v "$tool" >/dev/null || die "$tool is not installed (run scripts/bootstrap.sh)"
    done
    [ -x "$CNI_PLUGINS/bridge" ] || die "no CNI plugins in $CNI_PLUGINS (apt-get install containernetworking-plugins)"
    BIN="$(bin_dir)"
    [ -x "$BIN/kubelet" ] && [ -x "$BIN/kube-proxy" ] \
        || die "kubelet/kube-proxy are not built: run scripts/services/kubernetes.sh build"
    NODE="$DIR/node"; DAEMON_LOGS="$NODE"
    if [ -f "$DIR/pids/kubelet" ] && kill -0 "$(cat "$DIR/pids/kubelet")" 2>/dev/null; then
        log "already running (state in $NODE)"; return 0
    fi
    mkdir -p "$NODE/pki" "$DIR/pids"
    CA_CRT="$(kubeconfig_field "$kubeconfig" certificate-authority)"
    CA_KEY="${CA_CRT%.crt}.key"
    [ -f "$CA_CRT" ] && [ -f "$CA_KEY" ] \
        || die "the node signs its certificates with the cluster CA: no $CA_KEY beside $CA_CRT"
    local server
    server="$(kubeconfig_field "$kubeconfig" server)"
    API_PORT="${server##*:}"
    local t0=$SECONDS k snapshotter pause
    pause="$(pause_image)"
    k="$(take_slot)"
    echo "$k" >"$NODE/slot"
    trap 'log "start failed: removing what it made"; cmd_stop' EXIT   # nothing half-made stays
    setup_network "$k"
    sign_client_cert kubelet "system:node:$NODE_NAME" system:nodes
    sign_client_cert kube-proxy system:kube-proxy system:node-proxier
    write_kubeconfig "$NODE/kubelet.kubeconfig" "$server" kubelet
    write_kubeconfig "$NODE/kube-proxy.kubeconfig" "https://10.250.$k.1:$API_PORT" kube-proxy localhost
    snapshotter="$(pick_snapshotter)"
    write_containerd_config "$snapshotter"
    write_registry_hosts
    write_cni "$k"
    write_kubelet_config "$k"
    write_kube_proxy_config "$k"
    local sub
    for sub in /sys/fs/cgroup/*/; do   # the kubelet's cgroup root, in every v1 hierarchy
        [ -f "$sub/cgroup.procs" ] && [ "$(basename "$sub")" != unified ] && mkdir -p "$sub/envforge-$k"
    done
    start_daemon containerd containerd --config "$NODE/containerd.toml"
    local ctr=(ctr --address "$NODE/containerd.sock" --namespace k8s.io)
    wait_for "containerd ($snapshotter)" 30 "${ctr[@]}" version \
        || { tail -20 "$NODE/containerd.log" >&2; die "containerd did not start (log: $NODE/containerd.log)"; }
    "${ctr[@]}" images import --snapshotter "$snapshotter" "$pause" >/dev/null
    "${ctr[@]}" images label "$SANDBOX_IMAGE" io.cri-containerd.pinned=pinned >/dev/null
    start_daemon kubelet "$BIN/kubelet" --config "$NODE/kubelet.yaml" \
        --kubeconfig "$NODE/kubelet.kubeconfig" --root-dir "$NODE/kubelet" \
        --cert-dir "$NODE/kubelet/pki" --hostname-override "$NODE_NAME" \
        --node-ip "10.250.$k.1" --node-labels "envforge.dev/node=real"
    start_daemon kube-proxy nsenter --net="/run/netns/efnode-$k" \
        "$BIN/kube-proxy" --config "$NODE/kube-proxy.yaml"
    wait_for "node $NODE_NAME" 120 "$BIN/kubectl" --kubeconfig "$kubeconfig" wait \
        --for=condition=Ready "node/$NODE_NAME" --timeout=1s \
        || { tail -30 "$NODE/kubelet.log" >&2; die "the kubelet did not make the node Ready (log: $NODE/kubelet.log)"; }
    log "node $NODE_NAME up in $((SECONDS - t0)) s (slot $k, pods 10.244.$k.0/24, services $SERVICE_CIDR)"
    trap - EXIT
}

# Every container of the node is killed and deleted through containerd (the shims outlive
# containerd otherwise); each pod sandbox's network namespace file goes too.
remove_containers() {
    local ctr=(ctr --address "$NODE/containerd.sock" --namespace k8s.io) id netns left
    "${ctr[@]}" version >/dev/null 2>&1 || return 0
    for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
        "${ctr[@]}" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
    # containerd's CRI plugin deletes a task once it exited; delete what it has not yet.
    for _ in $(seq 1 50); do
        left="$("${ctr[@]}" tasks ls -q 2>/dev/null)"
        [ -n "$left" ] || break
        for id in $left; do "${ctr[@]}" tasks delete "$id" >/dev/null 2>&1 || true; done
        sleep 0.1
    done
    for id in $("${ctr[@]}" containers ls -q 2>/dev/null); do
        netns="$("${ctr[@]}" containers info "$id" 2>/dev/null | python3 -c '
import json, sys
spec = json.load(sys.stdin).get("Spec") or {}
for ns in (spec.get("linux") or {}).get("namespaces") or []:
    if ns.get("type") == "network" and ns.get("path", "").startswith("/var/run/netns/cni-"):
        print(ns["path"])' 2>/dev/null || true)"
        "${ctr[@]}" containers delete "$id" >/dev/null 2>&1 || true
        if [ -n "$netns" ]; then umount "$netns" 2>/dev/null || true; rm -f "$netns"; fi
    done
}

cmd_stop() {
    NODE="$DIR/node"; DAEMON_LOGS="$NODE"
    [ -d "$NODE" ] || return 0
    stop_daemon kube-proxy & stop_daemon kubelet & wait
    remove_containers
    stop_daemon containerd
    # Whatever is still mounted under the node (secret tmpfs, sandbox shm, rootfs), deepest first.
    awk -v under="$NODE/" 'index($2, under) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    if [ -f "$NODE/slot" ]; then
        local k
        k="$(cat "$NODE/slot")"
        find /sys/fs/cgroup/*/"envforge-$k" -depth -type d -exec rmdir {} \; 2>/dev/null || true
        teardown_network "$k"
        rm -f "$NODE/slot"
    fi
}

DIR="${2:-}"
case "${1:-}" in
start)
    [ -n "$DIR" ] && [ -n "${3:-}" ] || { echo "usage: $0 start DIR KUBECONFIG" >&2; exit 2; }
    DIR="$(mkdir -p "$DIR" && cd "$DIR" && pwd)"
    cmd_start "$3" ;;
stop)
    [ -n "$DIR" ] || { echo "usage: $0 stop DIR" >&2; exit 2; }
    [ -d "$DIR" ] || exit 0
    DIR="$(cd "$DIR" && pwd)"
    cmd_stop ;;
expose)
    [ -n "$DIR" ] && [ -n "${3:-}" ] || { echo "usage: $0 expose DIR PORT..." >&2; exit 2; }
    [ -f "$DIR/node/slot" ] || die "no node is running with state in $DIR"
    k="$(cat "$DIR/node/slot")"; shift 2
    for port in "$@"; do
        [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -le 65535 ] || die "not a TCP port: $port"
    done
    expose_ports "$k" "$@"
    echo "10.250.$k.1" ;;
*) echo "usage: $0 start DIR KUBECONFIG | stop DIR | expose DIR PORT..." >&2; exit 2 ;;
esac
