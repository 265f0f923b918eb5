"""Rendering an environment summary as Markdown (Prefect artifact and PR comment alike).

The first line is a hidden marker naming the environment, so a pull-request comment can be
found and updated instead of piling up. The finished text goes through the secret redactor:
no value registered by the secrets area (or passed in ``secret_values``) survives, and
credentials written into URLs (``https://user:token@host``) are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from envforge.secrets.redaction import SecretRedactor, scrub
from envforge.summary.model import DatabaseSummary, EnvironmentSummary, StepTiming

MARKER_PREFIX = "<!-- envforge:summary:"
#: user[:password]@ in a URL: dropped even when the value was never registered as a secret.
_URL_CREDENTIALS = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")
_STATUS_ICONS = {"completed": "✅", "failed": "❌", "rolled-back": "↩️", "destroyed": "🗑️",
                 "running": "⏳"}


def summary_marker(name: str) -> str:
    """The hidden first line that identifies this environment's summary."""
    return f"{MARKER_PREFIX}{name} -->"


def render_summary(summary: EnvironmentSummary | Mapping[str, Any],
                   secret_values: Iterable[str] = ()) -> str:
    """Markdown for ``summary`` (a model or plain data), scrubbed of secret values."""
    if not isinstance(summary, EnvironmentSummary):
        summary = EnvironmentSummary.from_dict(summary)
    parts = [summary_marker(summary.name), _heading(summary)]
    parts.append(_overview(summary))
    if summary.message:
        parts.append(_quote(summary.message))
    if summary.links:
        parts.append("### Links\n\n" + "\n".join(
            f"- [{_link_text(link.title)}]({_link_url(link.url)})" for link in summary.links))
    if summary.images:
        rows = [[f"`{_code(i.name)}`", f"`{_code(i.digest)}`" if i.digest else "—",
                 {True: "reused", False: "built"}.get(i.cached, "") if i.cached is not None
                 else ""] for i in summary.images]
        parts.append("### Images\n\n" + _table(["image", "digest", ""], rows))
    if summary.databases:
        parts.append(_databases(summary.databases))
    if summary.steps:
        parts.append(_steps(summary.steps))
    for diagnostic in summary.diagnostics:
        parts.append(f"<details><summary>{_html(diagnostic.title)}</summary>\n\n"
                     f"{_fenced(diagnostic.text)}\n\n</details>")
    text = _URL_CREDENTIALS.sub(r"\1", "\n\n".join(p for p in parts if p) + "\n")
    extra = list(secret_values)
    if extra:
        local = SecretRedactor()
        local.register_all(extra)
        text = local.scrub(text)
    return scrub(text)


def _heading(summary: EnvironmentSummary) -> str:
    icon = _STATUS_ICONS.get(summary.status, "🔹")
    what = f" {summary.operation}" if summary.operation else ""
    return f"## {icon} Environment `{_code(summary.name)}`{what}: {_cell(summary.status)}"


def _overview(summary: EnvironmentSummary) -> str:
    lines = []
    if summary.url:
        lines.append(f"**URL:** {_link_url(summary.url)}")
    if summary.template:
        lines.append(f"**Template:** `{_code(summary.template)}`")
    source = summary.source or {}
    bits = []
    if source.get("repository"):
        bits.append(f"`{_code(str(source['repository']))}`")
    if source.get("branch"):
        bits.append(f"branch `{_code(str(source['branch']))}`")
    if source.get("commit"):
        bits.append(f"commit `{_code(str(source['commit'])[:12])}`")
    if source.get("pullRequest"):
        bits.append(f"pull request #{_cell(str(source['pullRequest']))}")
    if bits:
        lines.append("**Source:** " + ", ".join(bits))
    if summary.run_url:
        lines.append(f"**Prefect run:** [{_link_text('flow run')}]({_link_url(summary.run_url)})")
    return "  \n".join(lines)


def _databases(databases: Iterable[DatabaseSummary]) -> str:
    databases = list(databases)
    rows = [[f"`{_code(d.name)}`", _cell(d.strategy), _count(d.rows), _seconds(d.seconds)]
            for d in databases]
    text = "### Databases\n\n" + _table(["database", "strategy", "rows", "time"], rows)
    for d in databases:
        if d.tables:
            table_rows = [[f"`{_code(t)}`", _count(n)] for t, n in sorted(d.tables.items())]
            text += (f"\n\n<details><summary>{_html(d.name)}: rows per table</summary>\n\n"
                     + _table(["table", "rows"], table_rows) + "\n\n</details>")
    return text


def _steps(steps: Iterable[StepTiming]) -> str:
    steps = list(steps)
    rows = [[f"`{_code(s.step_id)}`", f"`{_code(s.action)}`" if s.action else "",
             _cell(s.status) + (f": {_cell(s.reason)}" if s.reason else ""),
             _seconds(s.seconds)] for s in steps]
    total = sum(s.seconds or 0.0 for s in steps)
    return ("### Steps\n\n" + _table(["step", "action", "status", "time"], rows)
            + f"\n\nTotal step time: {_seconds(total)}")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Text safe inside a table cell: no pipes, no line breaks, no HTML."""
    return _html(" ".join(str(text).split())).replace("|", "\\|")


def _code(text: str | None) -> str:
    """Text safe inside a single-backtick code span in a table cell."""
    return " ".join(str(text).split()).replace("`", "'").replace("|", "\\|")


def _html(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link_text(text: str) -> str:
    return re.sub(r"([\[\]\\])", r"\\\1", _cell(text))


def _link_url(url: str) -> str:
    # Spaces and parentheses would end a Markdown link early.
    return (str(url).strip().replace(" ", "%20").replace("(", "%28").replace(")", "%29")
            .replace("<", "%3C").replace(">", "%3E"))


def _quote(text: str) -> str:
    return "\n".join("> " + _html(line) for line in str(text).splitlines() or [""])


def _fenced(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text.rstrip()}\n{fence}"


def _count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds:02d} s"
