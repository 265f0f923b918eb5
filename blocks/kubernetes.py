"""KubernetesCluster: which cluster envforge delivers Secrets to, and how it authenticates.

Follows the prefect-kubernetes block shape. One of: kubeconfig content (``SecretStr``, it holds
credentials), a kubeconfig path, or in-cluster configuration (the pod's service account).
Without a saved block, :meth:`KubernetesCluster.from_environment` uses ``KUBECONFIG`` (or
``~/.kube/config``), or the in-cluster service account when running in a pod.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException
from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from blocks.loading import settings_of
from envforge.errors import ConfigurationError
from envforge.settings import EnvforgeSettings


class KubernetesCluster(Block):
    """A Kubernetes cluster envforge talks to (Secrets, namespaces, Argo CD status)."""

    _block_type_name = "envforge Kubernetes Cluster"
    _block_type_slug = "envforge-kubernetes-cluster"
    _description = "Kubeconfig (content or path) and context, or in-cluster configuration."

    kubeconfig: SecretStr | None = Field(
        default=None, description="Kubeconfig file content (YAML); it holds credentials."
    )
    kubeconfig_path: str | None = Field(default=None, description="Path of a kubeconfig file.")
    context: str | None = Field(default=None, description="Context; default: current-context.")
    in_cluster: bool = Field(
        default=False, description="Use the pod's service account (envforge runs in a pod)."
    )
    request_timeout_seconds: float = Field(default=15.0, description="Timeout of each request.")

    @classmethod
    def from_settings(cls, settings: EnvforgeSettings) -> KubernetesCluster:
        """KUBECONFIG (first file), else in-cluster when in a pod, else ~/.kube/config."""
        cluster = settings.cluster
        if cluster.kubeconfig:
            return cls(kubeconfig_path=cluster.kubeconfig.split(os.pathsep)[0])
        if cluster.service_host:
            return cls(in_cluster=True)
        default = Path("~/.kube/config").expanduser()
        if default.is_file():
            return cls(kubeconfig_path=str(default))
        raise ConfigurationError(
            "no Kubernetes cluster configured: name a KubernetesCluster block (clusterBlock), "
            "or set KUBECONFIG"
        )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> KubernetesCluster:
        """:meth:`from_settings` of ``environ`` (default: the process's settings)."""
        return cls.from_settings(settings_of(environ))

    def describe(self) -> str:
        """Where it points, without credentials (for messages)."""
        if self.in_cluster:
            return "in-cluster service account"
        source = "kubeconfig content" if self.kubeconfig else f"kubeconfig {self.kubeconfig_path}"
        return f"{source}, context {self.context or '(current)'}"

    def get_client(self) -> k8s_client.ApiClient:
        """A configured kubernetes ApiClient (usable as a context manager that closes it)."""
        configuration = k8s_client.Configuration()
        try:
            if self.in_cluster:
                k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            elif self.kubeconfig is not None:
                data: Any = yaml.safe_load(self.kubeconfig.get_secret_value())
                if not isinstance(data, dict):
                    raise ConfigurationError("Kubernetes block: kubeconfig is not a YAML mapping")
                k8s_config.load_kube_config_from_dict(  # type: ignore[no-untyped-call]
                    data, context=self.context, client_configuration=configuration)
            elif self.kubeconfig_path:
                if not Path(self.kubeconfig_path).expanduser().is_file():
                    raise ConfigurationError(
                        f"Kubernetes block: kubeconfig_path {self.kubeconfig_path!r} is not a file")
                k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=str(Path(self.kubeconfig_path).expanduser()),
                    context=self.context, client_configuration=configuration)
            else:
                raise ConfigurationError(
                    "Kubernetes block: set kubeconfig, kubeconfig_path or in_cluster")
        except (ConfigException, yaml.YAMLError) as e:
            reason = str(e).splitlines()[0][:200] if not isinstance(e, yaml.YAMLError) else (
                "kubeconfig is not valid YAML")
            raise ConfigurationError(
                f"Kubernetes block ({self.describe()}): {reason}; fix the kubeconfig or context"
            ) from e
        configuration.retries = 1  # fail fast when the API server is unreachable
        return k8s_client.ApiClient(configuration)


BLOCK_TYPES = [KubernetesCluster]
