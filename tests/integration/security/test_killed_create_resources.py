"""A create killed before its GitOps commit leaves nothing unaccounted for outside the database:
the provider repository a publisher created and the Secrets delivered to the environment's
own cluster are recorded before they are made (the run ledger) and removed by the next
create or destroy; what the record does not name is never deleted.

Real parts: the provider stand-in's REST side with a real Git smart-HTTP server (publish:github
really creates and pushes), the session's real Kubernetes API server (the Secrets). The kill
is the state it leaves: an intent whose run did not end (marked abandoned, the state a killed
run's intent is in once its process is gone) and whatever the steps had made by then.
"""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from blocks.kubernetes import KubernetesCluster
from blocks.loader import BlockConnections
from envforge.actions.registry import default_registry
from envforge.capabilities.ledger import RunLedger, ledger_path
from envforge.connections import KubernetesConnection
from envforge.environments.intents import (
    abandon_create,
    begin_create,
    list_intents,
    recover_killed_create,
)
from envforge.errors import ConfigurationError
from envforge.run.runner import TemplateRun
from envforge.secrets.delivery import LABEL_ENVIRONMENT, SecretDeliverer
from envforge.services import Services
from envforge.templating.loader import load_template
from envforge.templating.model import Template
from tests.git_http import GitHttpServer
from tests.integration.secrets.conftest import (  # noqa: F401  (the session's services)
    ClusterTarget,
    VaultTarget,
    cluster_target,
    vault_service,
    vault_target,
)
from tests.services_fixtures import make_services
from tests.standins.git_provider import ProviderStandIn

TOKEN = "prov-token-0077"


def _template(root: Path, steps: str) -> Template:
    directory = root / "tpl"
    (directory / "skeleton").mkdir(parents=True)
    (directory / "skeleton/README.md").write_text("# shop\n")
    (directory / "template.yaml").write_text(textwrap.dedent("""\
        apiVersion: scaffolder.backstage.io/v1beta3
        kind: Template
        metadata: {name: killed-publisher}
        spec:
          type: service
          steps:
            - id: fetch
              action: fetch:template
              input: {url: ./skeleton}
        """) + textwrap.indent(textwrap.dedent(steps), "    "))
    return load_template(directory)


def _services(home: Path, extra: dict[str, str] | None = None,
              connections: Any = None) -> Services:
    import os

    environ = {k: v for k, v in os.environ.items()
               if k.startswith(("ENVFORGE_", "PREFECT_", "VAULT_"))}
    environ.update({"ENVFORGE_HOME": str(home), **(extra or {})})
    return make_services(environ, connections)


@pytest.fixture
def github(tmp_path: Path) -> Iterator[tuple[ProviderStandIn, dict[str, str]]]:
    root = tmp_path / "git"
    root.mkdir()
    with GitHttpServer(root, "x-access-token", TOKEN, protect="all") as git, \
            ProviderStandIn(root, git, TOKEN) as stand_in:
        yield stand_in, {"ENVFORGE_GITHUB_API_URL": stand_in.base + "/github",
                         "ENVFORGE_GITHUB_GIT_URL": git.url(""),
                         "ENVFORGE_GITHUB_TOKEN": TOKEN}


def _killed_create(services: Services, template: Template, name: str) -> str:
    """Run the template as ``name``'s create, then leave its intent as a kill -9 does (the run
    never ended); the run id."""
    intent = begin_create(services, name, template, uuid.uuid4().hex[:12], name)
    run = TemplateRun(template, {}, environment={"name": name, "namespace": name},
                      run_id=intent.runId, services=services, registry=default_registry())
    run.run()
    run.close()
    abandon_create(services, intent)  # its process is gone: nothing ends the intent
    return intent.runId


def test_a_killed_creates_provider_repository_is_deleted_by_the_next_create(
        tmp_path: Path, github: tuple[ProviderStandIn, dict[str, str]]) -> None:
    stand_in, environ = github
    services = _services(tmp_path / "home", environ)
    template = _template(tmp_path, """\
        - id: publish
          action: publish:github
          input: {repoUrl: 'github.com?owner=acme&repo=shop-k1', defaultBranch: main}
        """)
    name = f"killed-{uuid.uuid4().hex[:6]}"
    _killed_create(services, template, name)
    assert (stand_in.git_root / "acme/shop-k1.git").exists()  # made before the "kill"
    [shown] = list_intents(services)
    assert shown.name == name and shown.describe().startswith("incomplete")

    cleaned = recover_killed_create(services, name, committed=False)
    assert cleaned is not None and cleaned.repositories == ["github:acme/shop-k1"]
    assert not (stand_in.git_root / "acme/shop-k1.git").exists()
    assert ("DELETE", "/github/repos/acme/shop-k1") in [(m, p) for m, p, _ in stand_in.calls]
    assert "github:acme/shop-k1" in cleaned.summary()
    assert list_intents(services) == []
    assert not ledger_path(services.settings.paths.home, name).exists()


def test_only_what_the_ledger_names_as_made_is_deleted(
        tmp_path: Path, github: tuple[ProviderStandIn, dict[str, str]]) -> None:
    """A repository recorded as intended but never as made is reported, not deleted (the
    request may not have reached the provider; the name may be someone else's); one whose
    name another repository took since (another id) is kept."""
    stand_in, environ = github
    services = _services(tmp_path / "home", environ)
    template = _template(tmp_path, """\
        - id: publish
          action: publish:github
          input: {repoUrl: 'github.com?owner=acme&repo=shop-k2', defaultBranch: main}
        """)
    name = f"killed-{uuid.uuid4().hex[:6]}"
    run_id = _killed_create(services, template, name)
    # the name changed hands after the kill: deleted and made again by someone else
    stand_in.route("DELETE", "/github/repos/acme/shop-k2", {})
    stand_in.make_repo("acme", "shop-k2")
    # and the killed run had also been about to create another one when it died
    stand_in.make_repo("acme", "victim-prod")
    RunLedger(ledger_path(services.settings.paths.home, name), run_id).record(
        "provider-repository", "intended", provider="github", requested="acme/victim-prod")

    cleaned = recover_killed_create(services, name, committed=False)
    assert cleaned is not None and cleaned.repositories == []
    assert cleaned.unconfirmed == ["github repository acme/victim-prod"]
    assert (stand_in.git_root / "acme/shop-k2.git").exists()
    assert (stand_in.git_root / "acme/victim-prod.git").exists()
    assert "check by hand" in cleaned.summary()


class _OneCluster(BlockConnections):
    """Connections whose only Kubernetes cluster is the named block (no default cluster):
    what an environment bound to another cluster than KUBECONFIG's sees."""

    def __init__(self, block: str, kubeconfig: Path) -> None:
        super().__init__()
        self.block, self.kubeconfig, self.asked = block, kubeconfig, []  # type: list[str|None]

    def kubernetes_cluster(self, name: str | None) -> KubernetesConnection:
        self.asked.append(name)
        if name != self.block:
            raise ConfigurationError(f"KubernetesCluster {name!r} is not configured here")
        cluster = KubernetesCluster(kubeconfig_path=str(self.kubeconfig))
        return KubernetesConnection(cluster.get_client(), cluster.describe(),
                                    cluster.request_timeout_seconds)


@pytest.mark.parametrize("cluster_input", ["target-{u}", "${{{{ parameters.cluster }}}}"])
def test_a_killed_creates_secrets_are_deleted_on_the_environments_cluster(
        tmp_path: Path, vault_target: VaultTarget, cluster_target: ClusterTarget,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch, cluster_input: str) -> None:
    """The Secrets go to the cluster block the template's kubernetes:secret names (literal, or
    rendered by the run: then the step records it before delivering); the clean-up deletes
    them there, not on the default cluster (which this machine does not even have)."""
    suffix = uuid.uuid4().hex[:6]
    block, name = f"target-{suffix}", f"killed-{suffix}"
    vault_target.put_secret(f"{vault_target.prefix}/db", {"password": f"pw-{suffix}-x"})
    monkeypatch.setenv("VAULT_ADDR", vault_target.address)
    monkeypatch.setenv("VAULT_TOKEN", vault_target.root_token)
    connections = _OneCluster(block, cluster_target.kubeconfig)
    services = _services(tmp_path / "home", {"VAULT_ADDR": vault_target.address,
                                             "VAULT_TOKEN": vault_target.root_token},
                         connections)
    directory = tmp_path / "secret-tpl"
    directory.mkdir()
    (directory / "template.yaml").write_text(textwrap.dedent(f"""\
        apiVersion: scaffolder.backstage.io/v1beta3
        kind: Template
        metadata: {{name: killed-secrets}}
        spec:
          type: service
          parameters:
            - properties: {{cluster: {{type: string}}}}
          variables:
            DB_PASSWORD: vault:kv/{vault_target.prefix}/db#password
          steps:
            - id: secrets
              action: vault:secrets
              input: {{environment: {name}}}
            - id: deliver
              action: kubernetes:secret
              input: {{fromStep: secrets, clusterBlock: "{cluster_input.format(u=suffix)}"}}
        """))
    template = load_template(directory)
    deliverer = SecretDeliverer(connections.kubernetes_cluster(block).api_client)
    connections.asked.clear()
    intent = begin_create(services, name, template, uuid.uuid4().hex[:12], name)
    try:
        run = TemplateRun(template, {"cluster": block},
                          environment={"name": name, "namespace": name}, run_id=intent.runId,
                          services=services, registry=default_registry())
        run.run()
        run.close()
        abandon_create(services, intent)  # killed: the intent stays, the Secret too
        assert _secrets(deliverer, name) == [f"{name}-secrets"]

        cleaned = recover_killed_create(services, name, committed=False)
        assert cleaned is not None and cleaned.problems == []
        assert cleaned.secrets == [f"{name}-secrets"]
        assert _secrets(deliverer, name) == []
        assert None not in connections.asked  # never the default cluster
    finally:
        deliverer.delete_namespace(name)


def _secrets(deliverer: SecretDeliverer, namespace: str) -> list[str]:
    return sorted(s.metadata.name for s in deliverer.core.list_namespaced_secret(namespace).items
                  if (s.metadata.labels or {}).get(LABEL_ENVIRONMENT))
