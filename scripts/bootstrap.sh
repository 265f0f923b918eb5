#!/usr/bin/env bash
# Installs everything envforge needs on a fresh Debian 12 machine: Debian packages (once),
# then a virtual environment in .venv with envforge and its development tools.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(git postgresql buildah docker-registry skopeo busybox-static openssl curl chromium
                 redis-server  # redis-server: Argo CD's cache (scripts/services/argocd.sh)
                 containerd runc containernetworking-plugins iptables gcc libc6-dev debootstrap)
                 # the real node (scripts/services/node.sh); gcc/libc6-dev build its pause binary
                 # and envforge's optional C extensions (setup.py: the keyed fake loops, binary
                 # COPY rows; without a compiler envforge runs their Python fallbacks);
                 # debootstrap the base images of scripts/services/images.sh (Python, PostgreSQL)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv"
    "$PYTHON" -m venv .venv
fi
# Reinstall only when the build's inputs changed since the last install: pyproject.toml,
# setup.py, this script's install line or a C source of the compiled extensions (so a
# pulled change to one is built).
stamp=.venv/.envforge-installed
if [ ! -f "$stamp" ] || [ -n "$(find pyproject.toml setup.py scripts/bootstrap.sh envforge \
        -newer "$stamp" \( -name pyproject.toml -o -name setup.py -o -name bootstrap.sh \
        -o -name '*.c' -o -name '*.h' \) -print -quit)" ]; then
    echo "bootstrap: installing envforge and its dependencies into .venv"
    # compat: the checkout goes on sys.path through a .pth line, as an installed package
    # sits there; the default editable mode installs an import hook whose module every
    # interpreter start of the .venv imports (about 10 ms each: every command, flow run and
    # test subprocess)
    .venv/bin/pip install -q --disable-pip-version-check -e ".[dev]" \
        --config-settings editable_mode=compat
    touch "$stamp"
fi
