"""A whole template with secrets, run by envforge's runner against Vault, the cluster and a Git
repository: the Secret arrives, and no secret value is found in the repository's history (every
object), the logs, the run's result and outputs, the workspace or any error message. Faults
(failing later step, sealed Vault, a secret in a Git-bound field) leave nothing behind."""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from envforge.errors import StepFailedError
from envforge.run.runner import TemplateRun
from envforge.secrets.actions import VaultSecrets, VaultSecretsInput
from envforge.secrets.redaction import default_redactor
from envforge.templating.loader import load_template
from tests.integration.secrets.conftest import ClusterTarget, VaultTarget
from tests.openbao import OpenBao
from tests.services_fixtures import make_services

DB_PASSWORD = f"db-pw-{uuid.uuid4().hex[:10]}"
API_TOKEN = f"api-tok-{uuid.uuid4().hex[:10]}"
BUILTIN_DB_PASSWORD = f"builtin-pw-{uuid.uuid4().hex[:10]}"
SECRET_VALUES = (DB_PASSWORD, API_TOKEN, BUILTIN_DB_PASSWORD)


@dataclass
class World:
    template_dir: Path
    repo: Path
    vault: VaultTarget
    cluster: ClusterTarget

    def run(self, name: str, fail: bool = False) -> TemplateRun:
        return TemplateRun(
            load_template(self.template_dir), {"name": name, "fail": fail},
            environment={"name": name,
                         "databaseUrl": f"postgres://app:{BUILTIN_DB_PASSWORD}@db/{name}"},
            services=make_services())

    def git_objects(self) -> str:
        """Every object in the repository, reachable or not (dropped commits included)."""
        out = subprocess.run(["git", "-C", str(self.repo), "cat-file", "--batch-all-objects",
                              "--batch"], capture_output=True, check=True)
        return out.stdout.decode("utf-8", errors="replace")

    def branch_files(self) -> list[str]:
        out = subprocess.run(["git", "-C", str(self.repo), "ls-tree", "-r", "--name-only",
                              "main"], capture_output=True, text=True)
        return out.stdout.split()


def template_yaml(prefix: str, repo: Path, fetch_values: str = "") -> str:
    return textwrap.dedent(f"""\
        apiVersion: scaffolder.backstage.io/v1beta3
        kind: Template
        metadata: {{name: secret-app}}
        spec:
          type: service
          parameters:
            - properties:
                name: {{type: string}}
                fail: {{type: boolean, default: false}}
              required: [name]
          variables:
            LOG_LEVEL: info
            DB_HOST: db.internal
            DB_PASSWORD: vault:kv/{prefix}/db#password
            API_TOKEN: vault:kv/{prefix}/api#token@1
            DSN: postgres://app:${{{{ vars.DB_PASSWORD }}}}@${{{{ vars.DB_HOST }}}}/app
          steps:
            - id: fetch
              action: fetch:template
              input:
                url: ./skeleton
                values: {{name: "${{{{ parameters.name }}}}"{fetch_values}}}
            - id: secrets
              action: vault:secrets
              input:
                environment: ${{{{ parameters.name }}}}
                variablesFile: ./variables.yaml
                overrides: {{REPLICAS: 2}}
            - id: deliver
              action: kubernetes:secret
              input: {{fromStep: secrets}}
            - id: show
              action: debug:log
              input:
                message: "delivered ${{{{ steps.deliver.output.secretName }}}}"
                listWorkspace: with-contents
            - id: publish
              action: publish:git
              input:
                repoUrl: {repo.as_uri()}
                targetPath: environments/${{{{ parameters.name }}}}
            - id: boom
              if: ${{{{ parameters.fail }}}}
              action: fetch:plain
              input: {{url: "http://example.invalid/skeleton"}}
        """)


@pytest.fixture
def world(tmp_path: Path, vault_target: VaultTarget, cluster_target: ClusterTarget,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    vault_target.put_secret(f"{vault_target.prefix}/db", {"password": DB_PASSWORD})
    vault_target.put_secret(f"{vault_target.prefix}/api", {"token": API_TOKEN})
    vault_target.put_secret(f"{vault_target.prefix}/api", {"token": "newer-token-not-pinned"})
    repo = tmp_path / "gitops.git"
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=main", str(repo)],
                   check=True)
    template_dir = tmp_path / "secret-app"
    (template_dir / "skeleton").mkdir(parents=True)
    (template_dir / "template.yaml").write_text(template_yaml(vault_target.prefix, repo))
    (template_dir / "variables.yaml").write_text(
        "variables: {LOG_LEVEL: warning}\ntypes: {preview: {LOG_LEVEL: debug}}\n")
    (template_dir / "skeleton" / "deployment.yaml").write_text(textwrap.dedent("""\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: ${{ values.name }}}
        spec:
          template:
            spec:
              containers:
                - name: app
                  envFrom:
                    - configMapRef: {name: ${{ values.name }}-config}
                    - secretRef: {name: ${{ values.name }}-secrets}
        """))
    monkeypatch.setenv("VAULT_ADDR", vault_target.address)
    monkeypatch.setenv("VAULT_TOKEN", vault_target.root_token)
    monkeypatch.setenv("KUBECONFIG", str(cluster_target.kubeconfig))
    yield World(template_dir, repo, vault_target, cluster_target)
    default_redactor().forget_all()


def assert_nowhere(*texts: str) -> None:
    for text in texts:
        for value in SECRET_VALUES:
            assert value not in text, "a secret value leaked"


def secret_in_cluster(cluster: ClusterTarget, namespace: str, name: str) -> dict[str, str]:
    from kubernetes import client, config

    api = config.new_client_from_config(str(cluster.kubeconfig))
    try:
        data = client.CoreV1Api(api).read_namespaced_secret(name, namespace).data or {}
    finally:
        api.close()
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def namespace_exists(cluster: ClusterTarget, name: str) -> bool:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    api = config.new_client_from_config(str(cluster.kubeconfig))
    try:
        client.CoreV1Api(api).read_namespace(name)
        return True
    except ApiException as e:
        assert e.status == 404
        return False
    finally:
        api.close()


def test_full_run_delivers_and_leaks_nothing(world: World,
                                             caplog: pytest.LogCaptureFixture) -> None:
    name = f"pr-{uuid.uuid4().hex[:6]}"
    run = world.run(name)
    bao = world.vault.bao
    db_path = f"kv/data/{world.vault.prefix}/db"
    reads_before = bao.reads(db_path) if bao else 0
    with caplog.at_level(logging.DEBUG):
        result = run.run()
    workspace_text = "".join(p.read_text() for p in run.workspace.rglob("*") if p.is_file())
    run.close()
    delivered = secret_in_cluster(world.cluster, name, f"{name}-secrets")
    assert delivered["DB_PASSWORD"] == DB_PASSWORD and delivered["API_TOKEN"] == API_TOKEN
    assert delivered["DSN"] == f"postgres://app:{DB_PASSWORD}@db.internal/app"
    assert delivered["DATABASE_URL"].endswith(f":{BUILTIN_DB_PASSWORD}@db/{name}")
    files = world.branch_files()
    assert f"environments/{name}/manifests/configmap.yaml" in files
    assert f"environments/{name}/deployment.yaml" in files
    history = world.git_objects()
    assert "LOG_LEVEL: debug" in history and "REPLICAS: '2'" in history
    logs = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert "configmap.yaml" in logs  # the debug step did log the workspace's contents
    assert_nowhere(history, logs, workspace_text, json.dumps(result.to_dict()),
                   json.dumps(run.outputs))
    if bao is not None:  # OpenBao's audit log
        assert bao.reads(db_path) == reads_before + 1  # DSN reuses the read


def test_a_failing_later_step_rolls_everything_back(world: World,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    name = f"pr-{uuid.uuid4().hex[:6]}"
    run = world.run(name, fail=True)
    with caplog.at_level(logging.DEBUG), pytest.raises(StepFailedError) as info:
        run.run()
    run.close()
    assert info.value.step_id == "boom"
    assert set(info.value.rolled_back) >= {"publish", "deliver", "secrets"}
    world.cluster.assert_namespace_going(name)  # deleted: Terminating, then gone
    assert not any(f.startswith(f"environments/{name}/") for f in world.branch_files())
    assert_nowhere(str(info.value), caplog.text, world.git_objects())


def test_sealed_vault_changes_nothing(world: World, openbao: OpenBao,
                                      caplog: pytest.LogCaptureFixture) -> None:
    name = f"pr-{uuid.uuid4().hex[:6]}"
    with openbao.sealed(), caplog.at_level(logging.DEBUG), \
            pytest.raises(StepFailedError) as info:
        world.run(name).run()
    assert info.value.step_id == "secrets" and "sealed" in str(info.value)
    assert world.branch_files() == []  # no commit
    assert not namespace_exists(world.cluster, name)  # no namespace change
    assert_nowhere(str(info.value), caplog.text)


def test_secret_reference_in_a_git_bound_field_is_refused(world: World) -> None:
    (world.template_dir / "template.yaml").write_text(template_yaml(
        world.vault.prefix, world.repo, ', dsn: "vault:kv/app/db#password"'))
    problems = VaultSecrets().check(VaultSecretsInput(environment="x"), world.template_dir)
    assert problems == ["step 'fetch' (fetch:template) input.values.dsn: secret reference in "
                        "a field that ends up in Git"]
    name = f"pr-{uuid.uuid4().hex[:6]}"
    bao = world.vault.bao
    requests_before = len(bao.audited()) if bao else 0
    with pytest.raises(StepFailedError) as info:
        world.run(name).run()
    assert info.value.step_id == "fetch" and "end up in Git" in str(info.value)
    assert world.branch_files() == [] and not namespace_exists(world.cluster, name)
    if bao is not None:  # refused before Vault was asked anything (its audit log)
        assert len(bao.audited()) == requests_before


@pytest.mark.prefect
@pytest.mark.slow
def test_through_prefect_no_value_in_logs_parameters_results_or_states(
    world: World, prefect_server: None
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogHandler

    from flows.run_template import run_template

    texts: list[str] = []
    for fail in (False, True):
        name = f"pr-{uuid.uuid4().hex[:6]}"
        state = run_template(template=str(world.template_dir),
                             parameters={"name": name, "fail": fail}, environment=name,
                             return_state=True)
        assert state.is_failed() is fail
        if not fail:
            assert secret_in_cluster(world.cluster, name, f"{name}-secrets")["DB_PASSWORD"] == (
                DB_PASSWORD)
            texts.append(json.dumps(state.result()))
        else:
            world.cluster.assert_namespace_going(name)  # rolled back: Terminating, then gone
        APILogHandler().flush()
        flow_run_id = state.state_details.flow_run_id
        with get_client(sync_client=True) as client:
            logs = client.read_logs(log_filter=LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            flow_run = client.read_flow_run(flow_run_id)
            task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[flow_run_id])))
        log_text = "\n".join(entry.message for entry in logs)
        assert f"{name}-secrets" in log_text  # the task runs' logs did arrive
        texts += [log_text, json.dumps(flow_run.parameters), str(state.message),
                  json.dumps([str(t.state.message if t.state else "") for t in task_runs])]
    assert_nowhere(*texts, world.git_objects())


def test_a_caller_named_environment_never_reaches_a_namespace_that_was_there(
    world: World, prefect_server: None
) -> None:
    """The run-template flow's ``environment`` parameter is whoever pressed the button's claim:
    naming an environment whose namespace exists (another environment's, with its own Secret)
    fails in one line before anything is written there; the victim's Secret is unchanged and its
    namespace stays. (The same run naming a fresh environment delivers: the test above.)"""
    from flows.run_template import run_template

    victim = f"victim-{uuid.uuid4().hex[:6]}"
    plane = world.cluster.plane
    plane.kubectl("create", "namespace", victim)
    plane.kubectl("create", "secret", "generic", "-n", victim, f"{victim}-secrets",
                  "--from-literal=DB_PASSWORD=the-victims-own")
    state = run_template(template=str(world.template_dir),
                         parameters={"name": victim, "fail": False}, environment=victim,
                         return_state=True)
    assert state.is_failed()
    message = str(state.message)
    assert f"namespace {victim} exists and this run did not make it" in message, message
    assert "\n" not in message.strip()
    assert secret_in_cluster(world.cluster, victim, f"{victim}-secrets") == {
        "DB_PASSWORD": "the-victims-own"}
    assert namespace_exists(world.cluster, victim)
    assert world.branch_files() == []
    assert_nowhere(message)
    plane.kubectl("delete", "namespace", victim, "--wait=false")


def test_a_token_that_may_not_write_secrets_leaves_nothing(
    world: World, caplog: pytest.LogCaptureFixture, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cluster refuses the Secret (RBAC 403, on the real server): the namespace the run
    made is deleted again, nothing reaches Git, no value is logged."""
    narrow = world.cluster.narrow_kubeconfig(tmp_path / "narrow", [
        {"apiGroups": [""], "resources": ["namespaces"],
         "verbs": ["get", "list", "create", "delete"]}])
    monkeypatch.setenv("KUBECONFIG", str(narrow))
    name = f"pr-{uuid.uuid4().hex[:6]}"
    with caplog.at_level(logging.DEBUG), pytest.raises(StepFailedError) as info:
        world.run(name).run()
    assert info.value.step_id == "deliver"
    assert "forbidden" in str(info.value).lower() or "permission" in str(info.value).lower()
    assert info.value.rolled_back == ["secrets", "fetch"]
    world.cluster.assert_namespace_going(name)  # the namespace it made is deleted again
    assert world.branch_files() == []
    assert_nowhere(str(info.value), caplog.text)


@pytest.mark.prefect
@pytest.mark.slow
def test_blocks_saved_in_prefect_are_used_by_name(world: World, prefect_server: None,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import SecretStr

    from blocks.kubernetes import KubernetesCluster
    from blocks.loader import BlockConnections
    from blocks.vault import VaultConnection
    from envforge.errors import ConfigurationError
    from envforge.secrets.actions import load_deliverer, load_vault_reader
    from envforge.secrets.references import parse_reference

    suffix = uuid.uuid4().hex[:6]
    VaultConnection(address=world.vault.address,
                    token=SecretStr(world.vault.root_token)).save(f"vault-{suffix}")
    KubernetesCluster(kubeconfig=SecretStr(world.cluster.kubeconfig.read_text())).save(
        f"cluster-{suffix}")
    monkeypatch.delenv("VAULT_ADDR")
    monkeypatch.delenv("KUBECONFIG")
    blocks = BlockConnections()
    reader = load_vault_reader(f"vault-{suffix}", blocks)
    assert reader.read(parse_reference(f"vault:kv/{world.vault.prefix}/db#password")) == (
        DB_PASSWORD)
    deliverer = load_deliverer(f"cluster-{suffix}", blocks)
    assert deliverer.core.read_namespace("default").metadata.name == "default"
    with pytest.raises(ConfigurationError, match="no VaultConnection block named 'absent'"):
        load_vault_reader("absent", blocks)
