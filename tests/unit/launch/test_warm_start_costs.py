"""What the warm runner resolves before forking, and the TLS context Prefect's clients share:
both are CPU every flow run would otherwise spend again (bench/fleet.py's profile)."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import certifi
import pytest

from envforge.core.config import PROJECT_ROOT
from envforge.launch.prefect_tls import share_prefect_tls_context, shared_default_context


def test_warm_up_resolves_the_kubernetes_api_classes_the_engines_use() -> None:
    # in a fresh interpreter: this test session may have imported them already
    code = ("import json, sys\n"
            "from envforge.launch.warm_runner import warm_up\n"
            "failed = warm_up([])\n"
            "print(json.dumps({'failed': failed, 'modules': [m for m in sys.modules if m in ("
            "'kubernetes.client.api.core_v1_api', 'kubernetes.client.api.apps_v1_api', "
            "'kubernetes.client.api.networking_v1_api', "
            "'kubernetes.client.api.custom_objects_api')]}))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert not [f for f in found["failed"] if f.startswith("kubernetes")]
    assert sorted(found["modules"]) == ["kubernetes.client.api.apps_v1_api",
                                        "kubernetes.client.api.core_v1_api",
                                        "kubernetes.client.api.custom_objects_api",
                                        "kubernetes.client.api.networking_v1_api"]


def test_prefects_clients_share_one_verified_context_per_ca_file() -> None:
    share_prefect_tls_context()
    from prefect.client.orchestration import PrefectClient

    first = PrefectClient("http://127.0.0.1:9/api")
    second = PrefectClient("http://127.0.0.1:9/api")
    verify = first._client._transport._pool._ssl_context  # type: ignore[attr-defined]
    assert isinstance(verify, ssl.SSLContext)
    assert verify is second._client._transport._pool._ssl_context  # type: ignore[attr-defined]
    assert verify.verify_mode == ssl.CERT_REQUIRED and verify.check_hostname
    assert verify.cert_store_stats()["x509_ca"] > 0  # the CA bundle is loaded in it


def test_only_the_plain_verified_form_is_shared(tmp_path: Path) -> None:
    bundle = certifi.where()
    assert shared_default_context(cafile=bundle) is shared_default_context(cafile=bundle)
    # the insecure form is changed by its callers: never shared
    assert ssl.create_default_context() is not shared_default_context()
    assert shared_default_context() is not shared_default_context()
    assert (shared_default_context(ssl.Purpose.CLIENT_AUTH, cafile=bundle)
            is not shared_default_context(ssl.Purpose.CLIENT_AUTH, cafile=bundle))
    # a changed file is read again
    copy = tmp_path / "ca.pem"
    copy.write_bytes(Path(bundle).read_bytes())
    before = shared_default_context(cafile=str(copy))
    copy.write_bytes(Path(bundle).read_bytes() + b"\n")
    os.utime(copy, ns=(copy.stat().st_atime_ns, copy.stat().st_mtime_ns + 1_000_000_000))
    assert shared_default_context(cafile=str(copy)) is not before
    with pytest.raises((ssl.SSLError, OSError)):
        shared_default_context(cafile=str(tmp_path / "missing.pem"))
