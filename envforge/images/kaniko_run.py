"""Running a rendered Kaniko build in a cluster: apply, follow the Job, read the digest.

:class:`KanikoJobRunner` is the ``submit`` callable of :class:`KanikoJobBuilder`. It creates
the Dockerfile ConfigMap and the Job with the official Kubernetes client, polls the Job (bounded
by its deadline), and returns the digest Kaniko wrote to the pod's termination message. On
failure the error names the last Dockerfile instruction Kaniko logged and shows the pod log's
last lines. The ConfigMap is deleted afterwards; the Job cleans itself up (its TTL).
"""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from envforge.core.kubernetes_boundary import ErrorKinds, map_api_exception
from envforge.errors import ImageBuildFailedError, ImageError
from envforge.images.builders import Logger

#: Kaniko logs each Dockerfile instruction as e.g. ``INFO[0003] RUN make``.
_KANIKO_STEP = re.compile(
    r"\b(?:INFO\[\d+\]|level=info msg=\")\s*((?:FROM|RUN|COPY|ADD|WORKDIR|ENV|ARG|USER)\b.*)")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
#: A refused build is an ImageError; no answer or a busy server stays the cluster's (temporary).
KANIKO_ERRORS = ErrorKinds(refused=ImageError, denied=ImageError, missing=ImageError)


class KanikoJobRunner:
    """Applies Kaniko build manifests through ``api_client`` and waits for the result."""

    def __init__(self, api_client: Any, poll_seconds: float = 2.0,
                 timeout_seconds: float = 1900.0, tail_lines: int = 15) -> None:
        self.core = k8s.CoreV1Api(api_client)
        self.batch = k8s.BatchV1Api(api_client)
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.tail_lines = tail_lines

    def __call__(self, manifests: list[dict[str, Any]], logger: Logger) -> str:
        # The client serialises plain dicts as they are; no need for its model classes.
        config_map: Any = manifests[0]
        job: Any = manifests[1]
        namespace = job["metadata"]["namespace"]
        name = job["metadata"]["name"]
        image = next(a for a in job["spec"]["template"]["spec"]["containers"][0]["args"]
                     if a.startswith("--destination=")).split("=", 1)[1]
        try:
            self._create(lambda: self.core.create_namespaced_config_map(namespace, config_map),
                         lambda: self.core.replace_namespaced_config_map(name, namespace,
                                                                         config_map))
            # An existing Job of the same name is the same image tag: follow it.
            self._create(lambda: self.batch.create_namespaced_job(namespace, job), None)
            logger.info("Kaniko Job %s/%s building %s", namespace, name, image)
            succeeded = self._wait(namespace, name)
            pod = self._pod(namespace, name)
            if not succeeded:
                log = self._log(namespace, pod)
                step = next((m.group(1) for line in reversed(log)
                             if (m := _KANIKO_STEP.search(line))), None)
                raise ImageBuildFailedError(image, step, log[-self.tail_lines:])
            digest = self._termination_digest(pod)
            logger.info("Kaniko pushed %s@%s", image, digest)
            return digest
        except ApiException as e:  # mapped at the one boundary, in this module's family
            raise map_api_exception(
                e, f"run the Kaniko build {namespace}/{name} (ConfigMap, Job, pods)",
                scrub=str, kinds=KANIKO_ERRORS) from e
        finally:
            with contextlib.suppress(ApiException):  # already gone, or never created
                self.core.delete_namespaced_config_map(name, namespace)

    @staticmethod
    def _create(create: Any, replace: Any) -> None:
        try:
            create()
        except ApiException as e:
            if e.status != 409:
                raise
            if replace is not None:
                replace()

    def _wait(self, namespace: str, name: str) -> bool:
        deadline = time.monotonic() + self.timeout_seconds
        while time.monotonic() < deadline:
            status = self.batch.read_namespaced_job(name, namespace).status
            if status is not None and (status.succeeded or 0) > 0:
                return True
            if status is not None and (status.failed or 0) > 0:
                return False
            time.sleep(self.poll_seconds)
        raise ImageError(f"Kaniko Job {namespace}/{name} did not finish within "
                         f"{self.timeout_seconds:.0f} s; see its pod's log")

    def _pod(self, namespace: str, name: str) -> Any:
        pods = self.core.list_namespaced_pod(namespace, label_selector=f"job-name={name}")
        if not pods.items:
            raise ImageError(f"Kaniko Job {namespace}/{name} finished without a pod to read")
        return pods.items[-1]

    def _log(self, namespace: str, pod: Any) -> list[str]:
        try:
            text = self.core.read_namespaced_pod_log(pod.metadata.name, namespace)
        except ApiException:
            return ["(the pod's log could not be read)"]
        return [line for line in str(text).splitlines() if line.strip()]

    @staticmethod
    def _termination_digest(pod: Any) -> str:
        for status in (pod.status.container_statuses or []) if pod.status else []:
            terminated = status.state.terminated if status.state else None
            if terminated is not None and terminated.message:
                found = _DIGEST.search(terminated.message)
                if found:
                    return found.group(0)
        raise ImageError(f"Kaniko pod {pod.metadata.name} succeeded but left no digest in its "
                         "termination message")
