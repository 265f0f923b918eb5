"""D1, D2, D3: a template writes only where its output belongs; git runs no repository code;
a broken cache copy is rebuilt instead of crashing every later command."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from envforge.actions.base import ActionContext
from envforge.actions.publish_git import PublishGit, PublishGitInput
from envforge.core.config import ensure_embedded_gitops_repo, load_settings
from envforge.errors import PublishScopeError
from envforge.git.publish_scope import check_environment_paths, gitops_scope_problem
from envforge.git.publishing import Author, GitPublisher
from tests.helpers import git, remote_files


def _ctx(tmp_path: Path, template: str = "scaffold", environment: str | None = None,
         step: str = "publish") -> ActionContext:
    workspace = tmp_path / "ws"
    (workspace / "hooks").mkdir(parents=True, exist_ok=True)
    hook = workspace / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch {tmp_path}/HOOK-RAN\n")
    hook.chmod(hook.stat().st_mode | stat.S_IEXEC)
    (workspace / "README.md").write_text("service\n")
    return ActionContext(run_id="r1", step_id=step, template_name=template,
                         template_dir=tmp_path, workspace=workspace,
                         environment={"name": environment} if environment else {},
                         logger=logging.getLogger("test"))


def _publish(tmp_path: Path, target: str, **kw: object) -> object:
    ctx = _ctx(tmp_path, **kw)  # type: ignore[arg-type]
    return PublishGit().run(ctx, PublishGitInput(targetPath=target))


@pytest.mark.parametrize(("target", "fragment"), [
    (".git/hooks", "'.git' is the repository's own metadata"),
    (".git", "'.git'"),
    ("services/x/.GIT/hooks", "'.git'"),
    ("environments", "whole of an environment"),
    ("argocd", "top-level folder 'argocd'"),
    ("services", "shared by every service"),
    ("", "repository root"),
    ("services/nl1\n", "control character"),
    ("services/Shop", "not a DNS label"),
    ("environments/other-env/manifests", "belongs to environment 'other-env'"),
    ("environments/mine/environment.yaml", "publish:gitops only"),
    ("../../etc", "escapes the repository"),
])
def test_targets_outside_the_scope_are_refused_before_anything_changes(
        tmp_path: Path, target: str, fragment: str) -> None:
    settings = load_settings()
    ensure_embedded_gitops_repo(settings)
    before = remote_files(settings.embedded_gitops_repo)
    with pytest.raises(PublishScopeError) as info:
        _publish(tmp_path, target, environment="mine")
    message = str(info.value)
    assert fragment in message and "step 'publish' (publish:git)" in message
    assert "\n" not in message.replace(repr(target), "")  # one line, apart from the echo
    assert remote_files(settings.embedded_gitops_repo) == before
    assert not (tmp_path / "HOOK-RAN").exists()


def test_a_scaffold_publishes_under_its_service_path(tmp_path: Path) -> None:
    out = _publish(tmp_path, "services/shop")
    settings = load_settings()
    assert "services/shop/README.md" in remote_files(settings.embedded_gitops_repo)
    assert getattr(out, "commitHash", None)


def test_another_templates_service_is_not_replaced(tmp_path: Path) -> None:
    _publish(tmp_path, "services/shop", template="first")
    with pytest.raises(PublishScopeError, match="belongs to template 'first'"):
        _publish(tmp_path, "services/shop", template="second")
    _publish(tmp_path, "services/shop", template="first")  # its own template may update it


def test_validate_reports_a_target_outside_the_scope() -> None:
    problems = PublishGit().check(PublishGitInput(targetPath=".git/hooks"), Path("."))
    assert problems and "'.git'" in problems[0]
    assert PublishGit().check(PublishGitInput(targetPath="services/shop"), Path(".")) == []
    assert gitops_scope_problem("environments/pr-1/extra", None) is None


def test_gitops_writes_stay_in_the_environments_own_paths() -> None:
    check_environment_paths("pr-1", ["environments/pr-1/manifests/a.yaml", "argocd/pr-1.yaml"])
    for bad in ("environments/pr-2/x.yaml", "argocd/pr-2.yaml", ".git/config", "README.md"):
        with pytest.raises(PublishScopeError):
            check_environment_paths("pr-1", [bad])


# --- item 2: git never runs repository code ----------------------------------------------

def _publisher(tmp_path: Path, remote: Path, **kw: object) -> GitPublisher:
    return GitPublisher(remote.as_uri(), "main", tmp_path / "cache", Author(), **kw)  # type: ignore[arg-type]


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    settings = load_settings()
    ensure_embedded_gitops_repo(settings)
    return settings.embedded_gitops_repo


def test_hooks_planted_in_the_cache_never_run(tmp_path: Path, remote: Path) -> None:
    publisher = _publisher(tmp_path, remote)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("1\n")
    publisher.publish(src, "services/a", "first")
    marker = tmp_path / "PWNED"
    for hook in ("post-checkout", "pre-commit", "post-commit", "pre-push", "reference-transaction",
                 "post-rewrite", "pre-auto-gc"):
        path = publisher.workdir / ".git" / "hooks" / hook
        path.write_text(f"#!/bin/sh\necho {hook} >> {marker}\n")
        path.chmod(0o755)
    (src / "a.txt").write_text("2\n")
    publisher.publish(src, "services/a", "second")
    publisher.undo(git("rev-parse", "HEAD", cwd=publisher.workdir), "undo")
    assert not marker.exists()


@pytest.mark.parametrize("config", [
    "[include]\n\tpath = /tmp/evil.cfg\n",
    "[core]\n\tfsmonitor = touch {marker}\n",
    "[core]\n\thooksPath = {hooks}\n",
    "[filter \"x\"]\n\tclean = touch {marker}\n\tsmudge = touch {marker}\n",
    "[core]\n\tworktree = /tmp\n",
    "[alias]\n\tfetch = !touch {marker}\n",
])
def test_a_tampered_config_makes_the_cache_be_rebuilt(tmp_path: Path, remote: Path,
                                                      config: str) -> None:
    publisher = _publisher(tmp_path, remote)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("1\n")
    publisher.publish(src, "services/a", "first")
    marker = tmp_path / "PWNED"
    hooks = tmp_path / "evil-hooks"
    hooks.mkdir()
    (hooks / "post-checkout").write_text(f"#!/bin/sh\ntouch {marker}\n")
    (hooks / "post-checkout").chmod(0o755)
    (publisher.workdir / ".gitattributes").write_text("* filter=x\n")
    with open(publisher.workdir / ".git" / "config", "a") as f:
        f.write(config.format(marker=marker, hooks=hooks))
    (src / "a.txt").write_text("2\n")
    publisher.publish(src, "services/a", "second")
    assert not marker.exists()
    text = (publisher.workdir / ".git" / "config").read_text()
    assert "include" not in text and "fsmonitor" not in text and "filter" not in text


def test_a_replaced_dot_git_is_rebuilt_not_a_crash(tmp_path: Path, remote: Path) -> None:
    """D3: skeleton files where .git was; the next commands rebuild the copy and go on."""
    publisher = _publisher(tmp_path, remote)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("1\n")
    publisher.publish(src, "services/a", "first")
    dot_git = publisher.workdir / ".git"
    git("--git-dir", str(dot_git), "gc", "--quiet", cwd=tmp_path)
    import shutil
    shutil.rmtree(dot_git)
    dot_git.mkdir()
    (dot_git / "README.md").write_text("a skeleton file\n")
    assert publisher.read(lambda root: sorted(os.listdir(root / "services")))== ["a"]
    (src / "b.txt").write_text("2\n")
    publisher.publish(src, "services/a", "second")
    assert "services/a/b.txt" in remote_files(remote)


def test_the_lock_wait_is_bounded_and_says_what_it_waits_for(
        tmp_path: Path, remote: Path, caplog: pytest.LogCaptureFixture) -> None:
    import fcntl

    from envforge.git.publishing import GitLockTimeoutError

    publisher = _publisher(tmp_path, remote, lock_timeout=0.3)
    publisher._lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(publisher._lock_file, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with caplog.at_level(logging.INFO, "envforge.git"), \
                pytest.raises(GitLockTimeoutError) as info:
            publisher.read(lambda root: None)
    assert "waiting for the git cache lock" in caplog.text
    assert "gave up after 0s" in str(info.value) or "gave up after" in str(info.value)
    assert "ENVFORGE_GIT_LOCK_TIMEOUT" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(("target", "fragment"), [
    (".git/hooks", "'.git' is the repository's own metadata"),
    ("environments", "whole of an environment"),
    ("argocd", "top-level folder 'argocd'"),
])
def test_templates_validate_reports_the_target(tmp_path: Path, target: str, fragment: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from envforge.cli import main

    directory = tmp_path / "hostile"
    (directory / "skeleton" / "hooks").mkdir(parents=True)
    (directory / "skeleton" / "hooks" / "post-checkout").write_text("#!/bin/sh\nid\n")
    (directory / "template.yaml").write_text(
        "apiVersion: scaffolder.backstage.io/v1beta3\nkind: Template\n"
        "metadata: {name: hostile}\nspec:\n  owner: x\n  type: service\n  steps:\n"
        "    - {id: fetch, action: fetch:template, input: {url: ./skeleton}}\n"
        f"    - {{id: publish, action: publish:git, input: {{targetPath: '{target}'}}}}\n")
    assert main(["templates", "validate", str(directory)]) == 1
    out = capsys.readouterr().out
    assert "FAIL hostile" in out and fragment in out and "step 'publish'" in out


def test_the_boundary_settings_cannot_be_loosened_by_a_caller() -> None:
    from envforge.core.git_boundary import safe_git_env

    env = safe_git_env({"GIT_CONFIG_COUNT": "0", "GIT_ASKPASS": "/x"},
                       [("core.hooksPath", "/evil"), ("protocol.file.allow", "never"),
                        ("http.extraHeader", "X: y")])
    pairs = [(env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"])
             for i in range(int(env["GIT_CONFIG_COUNT"]))]
    assert ("core.hooksPath", "/evil") not in pairs and ("http.extraHeader", "X: y") in pairs
    last = {k: v for k, v in pairs}  # git applies them in order: the last one wins
    assert last["core.hooksPath"] == "/dev/null" and last["protocol.file.allow"] == "never"
    assert env["GIT_ASKPASS"] == "/x" and env["GIT_CONFIG_GLOBAL"] == "/dev/null"


def test_d1_a_hostile_scaffold_run_changes_nothing_and_plants_no_hook(tmp_path: Path) -> None:
    """D1 as reported: fetch:template renders skeleton 'hooks', publish:git targets
    .git/hooks. The run fails at that step, the remote is unchanged, and the next publish runs
    no hook."""
    from envforge.errors import StepFailedError
    from envforge.run.runner import TemplateRun
    from envforge.templating.loader import load_template

    marker = tmp_path / "HOOK-RAN"
    directory = tmp_path / "hostile"
    for hook in ("post-checkout", "pre-commit", "reference-transaction"):
        file = directory / "skeleton" / hook
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(f"#!/bin/sh\ntouch {marker}\n")
        file.chmod(0o755)
    (directory / "template.yaml").write_text(
        "apiVersion: scaffolder.backstage.io/v1beta3\nkind: Template\n"
        "metadata: {name: hostile}\nspec:\n  owner: x\n  type: service\n  steps:\n"
        "    - {id: fetch, action: fetch:template, input: {url: ./skeleton}}\n"
        "    - {id: publish, action: publish:git, input: {targetPath: .git/hooks}}\n")
    settings = load_settings()
    ensure_embedded_gitops_repo(settings)
    before = remote_files(settings.embedded_gitops_repo)
    run = TemplateRun(load_template(directory), {})
    try:
        with pytest.raises(StepFailedError) as info:
            run.run()
    finally:
        run.close()
    assert info.value.step_id == "publish" and "'.git' is the repository's own metadata" in \
        str(info.value)
    assert remote_files(settings.embedded_gitops_repo) == before
    _publish(tmp_path, "services/after")  # the next, unrelated publish
    assert not marker.exists()


def test_d15_an_empty_ttl_on_the_command_line_is_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    from envforge.cli import main

    assert main(["env", "create", "pr-1", "--template", "python-service", "--ttl", ""]) != 0
    err = capsys.readouterr().err
    assert "--ttl '' is empty" in err and "Traceback" not in err
