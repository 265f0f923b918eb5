"""The Kaniko Job: rendered, validated offline against the Kubernetes schemas."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from envforge.errors import ImageError
from envforge.images.builders import BuildRequest, Logger
from envforge.images.kaniko import KanikoJobBuilder, KanikoSettings, job_name
from envforge.images.registry_client import RegistryAccess


def _request(**overrides: Any) -> BuildRequest:
    values: dict[str, Any] = dict(
        image="registry.example.com/team/web:0123456789ab-cafebabe",
        registry=RegistryAccess("registry.example.com/team"),
        dockerfile_text="FROM busybox\nCOPY . /www\n",
        source_url="https://git.example.com/acme/web.git", commit="0123456789ab" + "0" * 28,
        ref_name="refs/pull/7/head", build_args={"MODE": "preview"}, context_path="site",
    )
    values.update(overrides)
    return BuildRequest(**values)


def test_rendered_job_is_valid_and_names_secrets_only() -> None:
    builder = KanikoJobBuilder(KanikoSettings(git_secret="web-git", ca_configmap="corp-ca"))
    config_map, job = builder.render(_request())
    assert builder.validate([config_map, job]) == []
    assert config_map["data"]["Dockerfile"].startswith("FROM busybox")
    container = job["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert ("--context=git://git.example.com/acme/web.git#refs/pull/7/head#"
            "0123456789ab" + "0" * 28) in args
    assert "--destination=registry.example.com/team/web:0123456789ab-cafebabe" in args
    assert "--context-sub-path=site" in args and "--build-arg=MODE=preview" in args
    assert "--insecure" not in args
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"]} == {"web-git"}
    assert job["spec"]["backoffLimit"] == 0
    assert job["metadata"]["name"] == config_map["metadata"]["name"]
    assert len(job["metadata"]["name"]) <= 63


def test_insecure_registry_and_invalid_manifests_are_reported() -> None:
    builder = KanikoJobBuilder()
    manifests = builder.render(_request(registry=RegistryAccess("10.0.0.5:5000",
                                                                tls_verify=False)))
    assert "--insecure" in manifests[1]["spec"]["template"]["spec"]["containers"][0]["args"]
    manifests[1]["spec"]["backoffLimit"] = "never"
    problems = builder.validate(manifests)
    assert problems and "spec.backoffLimit" in problems[0]


def test_bare_commit_and_missing_cluster_are_clear_errors() -> None:
    builder = KanikoJobBuilder()
    with pytest.raises(ImageError, match="not a bare commit"):
        builder.render(_request(ref_name="0123456789ab" + "0" * 28))
    with pytest.raises(ImageError, match="no cluster to submit to"):
        builder.build_and_push(_request(), logging.getLogger("t"))


def test_submit_receives_the_manifests_and_returns_the_digest() -> None:
    seen: list[str] = []

    def submit(manifests: list[dict[str, Any]], logger: Logger) -> str:
        seen.extend(m["kind"] for m in manifests)
        return "sha256:" + "1" * 64

    result = KanikoJobBuilder(submit=submit).build_and_push(_request(), logging.getLogger("t"))
    assert seen == ["ConfigMap", "Job"] and result.digest == "sha256:" + "1" * 64


def test_job_name_is_dns_safe() -> None:
    name = job_name("Reg.Example.com/A_B/" + "x" * 90 + ":TAG")
    assert len(name) <= 63 and name == name.lower() and "_" not in name
