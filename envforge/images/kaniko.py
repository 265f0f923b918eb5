"""KanikoJobBuilder: the same build as a Kubernetes Job, for workers that run in a cluster.

Kaniko builds without a daemon or privileges inside a pod. The Job clones the commit itself
(``git://`` context pinned to the commit), reads the Dockerfile from a ConfigMap (so a
generated Dockerfile works like the repository's own), pushes with the registry credentials of
a ``kubernetes.io/dockerconfigjson`` Secret, and writes the pushed digest to its termination
message. Manifests only name Secrets; no credential is ever rendered into them.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kubernetes_validate

from envforge.errors import ImageError
from envforge.images.builders import BuildRequest, BuildResult, ImageBuilder, Logger

KANIKO_IMAGE = "gcr.io/kaniko-project/executor:v1.23.2"
KUBERNETES_VERSION = "1.30.0"
MANAGED_BY = {"app.kubernetes.io/managed-by": "envforge", "app.kubernetes.io/component": "build"}


@dataclass(frozen=True)
class KanikoSettings:
    namespace: str = "envforge-builds"
    registry_secret: str = "envforge-registry"  # dockerconfigjson Secret in the namespace
    git_secret: str | None = None  # Secret with keys username and token, for private repos
    ca_configmap: str | None = None  # ConfigMap with ca.crt for a private registry CA
    service_account: str | None = None
    kaniko_image: str = KANIKO_IMAGE
    deadline_seconds: int = 1800
    cpu: str = "1"
    memory: str = "2Gi"


def kaniko_context(url: str, ref_name: str | None, commit: str) -> str:
    """Kaniko's git context ``git://host/path#<ref>#<commit>``: it clones the ref over HTTPS
    and checks out the commit. Kaniko needs a ref name, so a bare commit cannot be built."""
    if not ref_name or not ref_name.startswith("refs/"):
        raise ImageError(f"Kaniko builds clone a ref, not a bare commit ({commit[:12]}): "
                         "request a branch, tag or pull/N/head, or use the buildah builder")
    bare = re.sub(r"^[a-z+]+://", "", url)
    return f"git://{bare}#{ref_name}#{commit}"


def job_name(image: str) -> str:
    """A DNS-1123 name unique to the image tag (at most 63 characters)."""
    digest = hashlib.sha256(image.encode()).hexdigest()[:10]
    tail = re.sub(r"[^a-z0-9-]+", "-", image.rsplit("/", 1)[-1].lower()).strip("-")[:40]
    return f"build-{tail}-{digest}".strip("-")


class KanikoJobBuilder(ImageBuilder):
    """Renders (and, given a Kubernetes client, runs) a Kaniko Job per build."""

    name = "kaniko"
    needs_checkout = False

    def __init__(self, settings: KanikoSettings | None = None,
                 submit: Callable[[list[dict[str, Any]], Logger], str] | None = None) -> None:
        self.settings = settings or KanikoSettings()
        self._submit = submit

    def render(self, request: BuildRequest) -> list[dict[str, Any]]:
        """A ConfigMap holding the Dockerfile and the Job that builds and pushes with it."""
        if not request.source_url or not request.commit:
            raise ImageError("a Kaniko build needs the source URL and commit of the request")
        s = self.settings
        name = job_name(request.image)
        labels = {**MANAGED_BY, "envforge.dev/commit": request.commit[:12]}
        args = [
            f"--context={kaniko_context(request.source_url, request.ref_name, request.commit)}",
            "--dockerfile=/workspace/dockerfile/Dockerfile",
            f"--destination={request.image}",
            "--digest-file=/dev/termination-log",
            "--snapshot-mode=redo",
            "--cleanup",
        ]
        if request.context_path not in ("", "."):
            args.append(f"--context-sub-path={request.context_path}")
        args += [f"--build-arg={k}={v}" for k, v in sorted(request.build_args.items())]
        args += [f"--label={k}={v}" for k, v in sorted(request.labels.items())]
        if not request.registry.tls_verify:
            args += ["--insecure", "--skip-tls-verify", "--insecure-pull"]
        mounts: list[dict[str, Any]] = [
            {"name": "dockerfile", "mountPath": "/workspace/dockerfile", "readOnly": True},
            {"name": "registry-auth", "mountPath": "/kaniko/.docker", "readOnly": True},
        ]
        volumes: list[dict[str, Any]] = [
            {"name": "dockerfile", "configMap": {"name": name}},
            {"name": "registry-auth", "secret": {
                "secretName": s.registry_secret,
                "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}},
        ]
        if s.ca_configmap:
            args.append(f"--registry-certificate={request.registry.host}=/kaniko/ca/ca.crt")
            mounts.append({"name": "registry-ca", "mountPath": "/kaniko/ca", "readOnly": True})
            volumes.append({"name": "registry-ca", "configMap": {"name": s.ca_configmap}})
        env: list[dict[str, Any]] = []
        if s.git_secret:
            env = [{"name": var, "valueFrom": {"secretKeyRef": {"name": s.git_secret,
                                                                  "key": key}}}
                   for var, key in (("GIT_USERNAME", "username"), ("GIT_PASSWORD", "token"))]
        container: dict[str, Any] = {
            "name": "kaniko", "image": s.kaniko_image, "args": args, "volumeMounts": mounts,
            "resources": {"requests": {"cpu": s.cpu, "memory": s.memory},
                          "limits": {"memory": s.memory}},
            "terminationMessagePolicy": "File",
        }
        if env:
            container["env"] = env
        pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container],
                                    "volumes": volumes}
        if s.service_account:
            pod_spec["serviceAccountName"] = s.service_account
        config_map = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": s.namespace, "labels": labels},
            "data": {"Dockerfile": request.dockerfile_text},
        }
        job = {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": s.namespace, "labels": labels},
            "spec": {
                "backoffLimit": 0,
                "activeDeadlineSeconds": s.deadline_seconds,
                "ttlSecondsAfterFinished": 3600,
                "template": {"metadata": {"labels": labels}, "spec": pod_spec},
            },
        }
        return [config_map, job]

    @staticmethod
    def validate(manifests: list[dict[str, Any]],
                 version: str = KUBERNETES_VERSION) -> list[str]:
        """Offline schema problems of the rendered manifests ([] when valid)."""
        problems: list[str] = []
        for manifest in manifests:
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                problems.append(f"{manifest['kind']}/{manifest['metadata']['name']}: "
                                f"{path}: {e.message}")
        return problems

    def build_and_push(self, request: BuildRequest, logger: Logger) -> BuildResult:
        """Render, validate and hand the manifests to ``submit`` (which applies them, follows
        the Job and returns the digest from its termination message)."""
        manifests = self.render(request)
        problems = self.validate(manifests)
        if problems:
            raise ImageError("the rendered Kaniko Job is invalid: " + "; ".join(problems))
        if self._submit is None:
            raise ImageError("KanikoJobBuilder has no cluster to submit to: give it a submit "
                             "function, or use the buildah builder on this worker")
        started = time.perf_counter()
        digest = self._submit(manifests, logger)  # raises ImageBuildFailedError on failure
        elapsed = time.perf_counter() - started
        return BuildResult(digest=digest, build_seconds=elapsed, push_seconds=0.0)
