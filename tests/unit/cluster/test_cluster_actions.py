"""argocd:wait: registered, its input checked, its dry run a plan that touches no cluster."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from envforge.actions.base import ActionContext
from envforge.actions.registry import default_registry
from envforge.cluster.actions import ArgoCDWait, ArgoCDWaitInput
from envforge.cluster.cli import add_env_commands, format_health
from envforge.cluster.status import (
    EnvironmentHealth,
    parse_application,
    parse_deployment,
    parse_pod,
)
from envforge.errors import ActionError, EnvironmentNameError
from tests.unit.cluster.objects import application, deployment, pod


def ctx(tmp_path: Path, **environment: str) -> ActionContext:
    return ActionContext(run_id="r1", step_id="wait", template_name="t", template_dir=tmp_path,
                         workspace=tmp_path, dry_run=True, environment=environment,
                         logger=logging.getLogger("test.argocd"))


def test_registered_with_examples() -> None:
    action = default_registry().get("argocd:wait")
    assert isinstance(action, ArgoCDWait)
    assert action.supports_dry_run and action.examples
    ArgoCDWaitInput.model_validate(action.examples[0]["input"] | {"revision": "abc"})


def test_input_is_checked() -> None:
    with pytest.raises(ValidationError):
        ArgoCDWaitInput.model_validate({"timeoutSeconds": 0})
    with pytest.raises(ValidationError):
        ArgoCDWaitInput.model_validate({"timeout": 10})  # unknown key
    assert ArgoCDWait().check(ArgoCDWaitInput(timeoutSeconds=5, pollSeconds=10), Path("."))


def test_dry_run_plans_from_the_run_environment(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "test.argocd")
    out = ArgoCDWait().dry_run(ctx(tmp_path, name="pr-7", namespace="pr-7",
                                   host="pr-7-x.example.test"),
                               ArgoCDWaitInput(revision="abcdef123456", timeoutSeconds=30))
    assert out.url == "https://pr-7-x.example.test" and out.revision == "abcdef123456"
    assert "Application argocd/pr-7" in caplog.text and "namespace pr-7" in caplog.text


def test_environment_name_is_required_and_checked(tmp_path: Path) -> None:
    with pytest.raises(ActionError, match="no environment name"):
        ArgoCDWait().dry_run(ctx(tmp_path), ArgoCDWaitInput())
    with pytest.raises(EnvironmentNameError):
        ArgoCDWait().dry_run(ctx(tmp_path), ArgoCDWaitInput(environment="Bad_Name"))


def test_env_commands_parse() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    env = sub.add_parser("env").add_subparsers(dest="env_command")
    add_env_commands(env)
    args = parser.parse_args(["env", "logs", "pr-1", "--component", "web", "-f", "--tail",
                              "5"])
    assert (args.name, args.component, args.follow, args.tail) == ("pr-1", "web", True, 5)
    args = parser.parse_args(["env", "shell", "pr-1", "--command", "python manage.py shell"])
    assert args.command == "python manage.py shell" and callable(args.handler)
    assert parser.parse_args(["env", "status", "pr-1", "--output", "json"]).output == "json"


def test_status_text_shows_verdict_and_problems() -> None:
    rollouts = (parse_deployment(deployment("web", "pr-1", available=0)),)
    health = EnvironmentHealth(
        "pr-1", "pr-1", parse_application("pr-1", application("pr-1", health="Degraded")),
        rollouts, (parse_pod(pod("web-a", "pr-1", "web", ready=False,
                                 waiting="CrashLoopBackOff", restarts=1), rollouts),), "")
    text = format_health(health)
    assert "argo cd: Synced / Degraded" in text
    assert "web-a" in text and "CrashLoopBackOff" in text
    assert "problems:" in text and "rolling out" in text
