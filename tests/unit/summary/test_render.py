from __future__ import annotations

from typing import Any

from envforge.secrets.redaction import default_redactor
from envforge.summary.model import EnvironmentSummary, database_from_output, image_from_output
from envforge.summary.render import render_summary, summary_marker


def full_summary(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "pr-42",
        "status": "completed",
        "operation": "create",
        "url": "https://pr-42-k3v9x0q2ma.preview.example.test",
        "template": "python-service",
        "links": [{"title": "Open the app", "url": "https://pr-42.example.test/"},
                  {"title": "Repository", "url": "https://github.com/acme/orders-api"}],
        "images": [{"name": "127.0.0.1:5000/orders:abc123-k1",
                    "digest": "sha256:" + "9" * 64, "cached": False}],
        "databases": [{"name": "envforge_pr_42", "strategy": "clone", "rows": 1234567,
                       "tables": {"users": 1000, "orders": 1233567}, "seconds": 8.25}],
        "steps": [{"step_id": "image", "action": "image:build", "status": "completed",
                   "seconds": 61.5},
                  {"step_id": "db", "action": "db:clone", "status": "completed",
                   "seconds": 8.25}],
        "source": {"repository": "https://github.com/acme/orders-api.git",
                   "branch": "feature/x", "pullRequest": 42, "commit": "a" * 40},
        "run_url": "http://127.0.0.1:4200/runs/flow-run/123",
    }
    data.update(overrides)
    return data


def test_everything_the_issue_asks_for_is_there() -> None:
    text = render_summary(full_summary())
    assert text.startswith(summary_marker("pr-42") + "\n")
    assert "## ✅ Environment `pr-42` create: completed" in text
    assert "**URL:** https://pr-42-k3v9x0q2ma.preview.example.test" in text
    assert "- [Open the app](https://pr-42.example.test/)" in text
    assert f"| `127.0.0.1:5000/orders:abc123-k1` | `sha256:{'9' * 64}` | built |" in text
    assert "| `envforge_pr_42` | clone | 1,234,567 | 8.2 s |" in text
    assert "| `orders` | 1,233,567 |" in text
    assert "| `image` | `image:build` | completed | 1 min 02 s |" in text
    assert "Total step time: 1 min 10 s" in text
    assert "branch `feature/x`" in text and "pull request #42" in text
    assert "[flow run](http://127.0.0.1:4200/runs/flow-run/123)" in text


def test_sections_without_data_are_left_out() -> None:
    text = render_summary({"name": "dev-1", "status": "destroyed"})
    assert "🗑️" in text
    for heading in ("### Links", "### Images", "### Databases", "### Steps", "**URL:**"):
        assert heading not in text


def test_failure_shows_reason_and_diagnostics_in_a_safe_fence() -> None:
    log = "Error: ```not a fence``` \nCrashLoopBackOff"
    text = render_summary(full_summary(
        status="failed", message="step 'wait' failed: not healthy after 300s",
        diagnostics=[{"title": "pod app-1 <events>", "text": log}]))
    assert "## ❌" in text
    assert "> step 'wait' failed: not healthy after 300s" in text
    assert "<summary>pod app-1 &lt;events&gt;</summary>" in text
    assert "````text\n" + log.rstrip() + "\n````" in text


def test_table_cells_cannot_break_the_table() -> None:
    text = render_summary(full_summary(steps=[
        {"step_id": "a|b", "action": "x", "status": "failed", "reason": "bad | worse\nline2"}]))
    row = next(line for line in text.splitlines() if line.startswith("| `a"))
    assert row == "| `a\\|b` | `x` | failed: bad \\| worse line2 | — |"


def test_secret_values_never_appear() -> None:
    registered = "reg1stered-Secret-Value-77"
    default_redactor().register(registered)
    explicit = "explicit-Secret-Value-88"
    text = render_summary(full_summary(
        message=f"connect failed: postgres://app:{registered}@db/x",
        diagnostics=[{"title": "env", "text": f"TOKEN={explicit}"}]), secret_values=[explicit])
    assert registered not in text and explicit not in text
    assert "********" in text


def test_from_run_result_and_step_outputs() -> None:
    result = {
        "template": "python-service", "run_id": "r1", "dry_run": False,
        "steps": [{"id": "fetch", "name": "Fetch", "action": "fetch:template",
                   "status": "completed", "duration_s": 0.4, "reason": None},
                  {"id": "publish", "name": "Publish", "action": "publish:gitops",
                   "status": "failed", "duration_s": 1.5, "reason": "push refused"}],
        "output": {"links": [{"title": "App", "url": "https://x.test"}], "text": "hello"},
    }
    summary = EnvironmentSummary.from_run_result(
        "pr-1", result, url="https://pr-1.test",
        images=[image_from_output({"image": "r/app@sha256:1", "imageTag": "r/app:t",
                                   "digest": "sha256:1", "cached": True})],
        databases=[database_from_output({"database": "envforge_pr_1", "rows": 10,
                                         "seconds": 0.5}, "seed")])
    assert summary.status == "failed"
    assert [s.step_id for s in summary.steps] == ["fetch", "publish"]
    assert summary.links[0].url == "https://x.test" and summary.message == "hello"
    text = render_summary(summary)
    assert "| `r/app:t` | `sha256:1` | reused |" in text
    assert "| `envforge_pr_1` | seed | 10 | 0.5 s |" in text
    assert "failed: push refused" in text


def test_credentials_in_urls_are_dropped_even_if_never_registered() -> None:
    text = render_summary(full_summary(
        source={"repository": "https://x-access-token:ghs_unregistered1@github.com/a/b.git"},
        message="could not connect to postgres://app:pw-unregistered@db.internal:5432/x",
        links=[{"title": "App", "url": "https://user:pass-unregistered@app.test/"}]))
    assert "unregistered" not in text
    assert "`https://github.com/a/b.git`" in text and "postgres://db.internal:5432/x" in text
