#!/usr/bin/env bash
# Base images for the real node, built here because no public registry is reachable (no Docker
# Hub, no gcr.io): a Debian bookworm root filesystem from Debian's own mirror (debootstrap,
# minbase), packed into a one-layer image with buildah, saved as a docker-archive under
# $ENVFORGE_CACHE/images and then only copied (skopeo) into whichever registry wants it.
#
#   images.sh python      Debian's python3 (3.11) and git + a virtualenv /opt/venv (on PATH) holding
#                         envforge's runtime dependencies at the versions of this checkout's
#                         .venv: the base of deploy/envforge.Containerfile, the image
#                         prefect-kubernetes' Jobs run flow runs in (as python:3.11-slim would)
#   images.sh postgres    Debian's PostgreSQL 15, started by /usr/local/bin/envforge-postgres
#                         (initdb on first start with $POSTGRES_PASSWORD, $POSTGRES_DB made and
#                         /docker-entrypoint-initdb.d/*.sql loaded into it, scram-sha-256 for
#                         every TCP client, listening on the pod's address): the environment's
#                         own database of `database: container`
#   images.sh push NAME IMAGE [--dest-creds U:P]   copy the archive of NAME into IMAGE
#                         (host:port/repo:tag, plain HTTP); prints IMAGE@digest
#
# Each prints the archive's path. A build takes 2-5 minutes once per recipe (measured here: 4 min
# 7 s for python, 4 min 34 s for postgres, on 2 cores at load average 25-45; the cache key is a
# hash of this script's recipe and, for python, of pyproject's dependencies); later calls return
# at once.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT_DIR="$(cd "$HERE/../.." && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
CACHE="${ENVFORGE_CACHE:-$HOME/.cache/envforge}/images"
MIRROR="${ENVFORGE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
RECIPE_VERSION=1

need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "$tool is not installed (run scripts/bootstrap.sh)"
    done
    [ "$(id -u)" -eq 0 ] || die "building a base image needs root (debootstrap, chroot)"
}

# The project's runtime requirements pinned to what .venv holds: its dependencies from
# pyproject.toml, each constrained by `pip freeze` (so the image runs what the tests ran).
python_requirements() {
    local py="$ROOT_DIR/.venv/bin/python"
    [ -x "$py" ] || die "no .venv: run make install first"
    "$py" - "$ROOT_DIR/pyproject.toml" <<'PY'
import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))
PY
    echo "--"
    "$ROOT_DIR/.venv/bin/pip" freeze --exclude-editable 2>/dev/null | grep -v '^#'
}

# A failed debootstrap may leave its /proc or /sys mounted in the root: unmount before removal.
unmount_under() {  # DIR
    awk -v under="$1/" 'index($2, under) == 1 {print $2}' /proc/mounts | sort -r \
        | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
}

# debootstrap into DIR with extra packages, the apt caches and docs left out of the image.
make_rootfs() {  # DIR PACKAGES(comma-separated)
    local dir=$1 packages=$2
    debootstrap --variant=minbase --include="$packages" "$SUITE" "$dir" "$MIRROR" >"$dir.log" 2>&1 \
        || { tail -20 "$dir.log" >&2; die "debootstrap failed"; }
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* \
        "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/locale/*
}

# ROOTFS + CONFIG (Containerfile lines after FROM/ADD) -> docker-archive OUT tagged NAME.
pack_image() {  # rootfs out name config...
    local rootfs=$1 out=$2 name=$3; shift 3
    local ctx
    ctx="$(mktemp -d "$CACHE/ctx.XXXXXX")"
    tar -C "$rootfs" --numeric-owner -cf "$ctx/rootfs.tar" .
    { echo "FROM scratch"; echo "ADD rootfs.tar /"; printf '%s\n' "$@"; } >"$ctx/Containerfile"
    local bh=(buildah --root "$ctx/storage" --runroot "$ctx/run" --storage-driver vfs)
    "${bh[@]}" bud -q --isolation chroot -t "$name" -f "$ctx/Containerfile" "$ctx" >/dev/null
    "${bh[@]}" push -q "$name" "docker-archive:$out.tmp:$name" >/dev/null
    "${bh[@]}" rmi -a -f >/dev/null 2>&1 || true
    rm -rf "$ctx"
    mv "$out.tmp" "$out"
}

build_python() {
    need debootstrap buildah chroot
    local reqs key out work
    reqs="$(python_requirements)"
    # keyed by the recipe and pyproject's dependencies (the part before "--"), not by the whole
    # freeze: a new test tool in .venv does not rebuild the image
    key="$( (echo "$RECIPE_VERSION"; sed -n '/^build_python()/,/^}/p' "$0"; printf '%s\n' "$reqs" | sed -n '/^--$/q;p') | sha256sum | cut -c1-16)"
    out="$CACHE/python-$key.tar"
    if [ ! -s "$out" ]; then
        log "building the Python base image (once: debootstrap + pip, 2-3 min)"
        mkdir -p "$CACHE"
        work="$(mktemp -d "$CACHE/python.XXXXXX")"
        # a subshell: whatever happens, the work folder goes with it
        ( trap 'unmount_under "$work"; rm -rf "$work"' EXIT
        make_rootfs "$work/rootfs" python3,python3-venv,ca-certificates,git
        cp /etc/resolv.conf "$work/rootfs/etc/resolv.conf"
        cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/etc/ssl/certs/ca-certificates.crt"
        printf '%s\n' "$reqs" | sed -n '/^--$/q;p' >"$work/rootfs/tmp/requirements.txt"
        printf '%s\n' "$reqs" | sed '1,/^--$/d' >"$work/rootfs/tmp/constraints.txt"
        chroot "$work/rootfs" python3 -m venv /opt/venv
        # pip runs in the image's root (its Python), reaching the package index as this host
        # does (PIP_* settings passed through; no pip cache left in the image).
        env -i PATH=/opt/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root PIP_NO_CACHE_DIR=1 \
            PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \
            ${PIP_INDEX_URL:+PIP_INDEX_URL="$PIP_INDEX_URL"} \
            PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
            chroot "$work/rootfs" pip install -q -r /tmp/requirements.txt -c /tmp/constraints.txt \
            >"$work/pip.log" 2>&1 || { tail -20 "$work/pip.log" >&2; die "pip install failed in the image"; }
        rm -f "$work/rootfs/tmp/requirements.txt" "$work/rootfs/tmp/constraints.txt" "$work/rootfs/etc/resolv.conf"
        # pip in images built FROM this one (deploy/envforge.Containerfile) trusts what this
        # machine's pip trusts (the CA bundle copied above)
        printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$work/rootfs/etc/pip.conf"
        find "$work/rootfs/opt/venv" -name __pycache__ -prune -exec rm -rf {} +
        pack_image "$work/rootfs" "$out" envforge-base/python:3.11 \
            'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            'ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1' 'CMD ["python3"]' )
    fi
    echo "$out"
}

build_postgres() {
    need debootstrap buildah chroot
    local key out work
    key="$( (echo "$RECIPE_VERSION"; sed -n '/^build_postgres()/,/^}/p' "$0") | sha256sum | cut -c1-16)"
    out="$CACHE/postgres-$key.tar"
    if [ ! -s "$out" ]; then
        log "building the PostgreSQL image (once: debootstrap, 1-2 min)"
        mkdir -p "$CACHE"
        work="$(mktemp -d "$CACHE/postgres.XXXXXX")"
        # a subshell: whatever happens, the work folder goes with it
        ( trap 'unmount_under "$work"; rm -rf "$work"' EXIT
        make_rootfs "$work/rootfs" postgresql-15
        rm -rf "$work/rootfs/var/lib/postgresql/15" "$work/rootfs/etc/postgresql/15"
        cat >"$work/rootfs/usr/local/bin/envforge-postgres" <<'SH'
#!/bin/sh
# The container's PostgreSQL: on first start initdb with the superuser password from
# $POSTGRES_PASSWORD (never on the command line), scram-sha-256 for every TCP client,
# $POSTGRES_DB and the *.sql of /docker-entrypoint-initdb.d loaded (a seed that fails to load
# leaves no data folder: the pod fails and says which file), then the server in the foreground (it stops cleanly on SIGTERM: a smart shutdown).
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    [ -n "${POSTGRES_PASSWORD:-}" ] || { echo "envforge-postgres: POSTGRES_PASSWORD is empty: set it from the environment's Secret" >&2; exit 1; }
    mkdir -p "$PGDATA"
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    /usr/lib/postgresql/15/bin/initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-instructions >/dev/null
    rm -f "$pwfile"
    echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
    # $POSTGRES_DB and the seed (*.sql in /docker-entrypoint-initdb.d, in name order, e.g. the
    # environment's seed from its Secret) through a server on the socket only: nothing
    # answers on TCP (so no readiness probe passes) before the data is in.
    bin=/usr/lib/postgresql/15/bin
    "$bin/pg_ctl" -D "$PGDATA" -w -s -o "-c listen_addresses='' -c unix_socket_directories=/tmp" start >/dev/null
    db=postgres
    if [ -n "${POSTGRES_DB:-}" ]; then
        "$bin/createdb" -h /tmp -U "$POSTGRES_USER" "$POSTGRES_DB"
        db=$POSTGRES_DB
    fi
    for sql in /docker-entrypoint-initdb.d/*.sql; do
        [ -f "$sql" ] || continue
        echo "envforge-postgres: loading $(basename "$sql") into $db"
        "$bin/psql" -h /tmp -U "$POSTGRES_USER" -d "$db" -v ON_ERROR_STOP=1 -q -f "$sql" >/dev/null \
            || { echo "envforge-postgres: $(basename "$sql") failed to load into $db" >&2
                 "$bin/pg_ctl" -D "$PGDATA" -w -s -m immediate stop; rm -rf "${PGDATA:?}"/*; exit 1; }
    done
    "$bin/pg_ctl" -D "$PGDATA" -w -s -m fast stop
fi
exec /usr/lib/postgresql/15/bin/postgres -D "$PGDATA" -c listen_addresses='*' \
    -c unix_socket_directories=/tmp -c shared_buffers=32MB -c max_connections=40
SH
        chmod 755 "$work/rootfs/usr/local/bin/envforge-postgres"
        local uid gid
        uid="$(chroot "$work/rootfs" id -u postgres)"; gid="$(chroot "$work/rootfs" id -g postgres)"
        mkdir -p "$work/rootfs/var/lib/postgresql/data"
        chown -R "$uid:$gid" "$work/rootfs/var/lib/postgresql"
        pack_image "$work/rootfs" "$out" envforge-base/postgres:15 \
            "USER $uid:$gid" 'ENV PGDATA=/var/lib/postgresql/data' 'EXPOSE 5432' \
            'ENTRYPOINT ["/usr/local/bin/envforge-postgres"]' )
    fi
    echo "$out"
}

push_image() {  # NAME IMAGE [--dest-creds U:P]
    local name=${1:-} image=${2:-} archive; shift 2 || true
    [ -n "$name" ] && [ -n "$image" ] || die "usage: $0 push python|postgres HOST:PORT/REPO:TAG"
    case "$name" in python) archive="$(build_python)" ;; postgres) archive="$(build_postgres)" ;;
        *) die "no base image named '$name': python or postgres" ;; esac
    skopeo copy -q --dest-tls-verify=false "$@" "docker-archive:$archive" "docker://$image" >/dev/null
    echo "$image@$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$image" "${@/--dest-creds/--creds}")"
}

case "${1:-}" in
python) build_python ;;
postgres) build_postgres ;;
push) shift; push_image "$@" ;;
*) echo "usage: $0 python | postgres | push NAME IMAGE [--dest-creds U:P]" >&2; exit 2 ;;
esac
