"""Environment run summaries: Markdown from plain data, a Prefect artifact, a PR comment.

See docs/webhooks.md ("Summary").
"""

from envforge.summary.artifact import artifact_key, publish_summary_artifact
from envforge.summary.comments import (
    CommentResult,
    PullRequestCommenter,
    PullRequestRef,
    pull_request_from_source,
)
from envforge.summary.model import (
    DatabaseSummary,
    Diagnostic,
    EnvironmentSummary,
    ImageSummary,
    Link,
    StepTiming,
    database_from_output,
    image_from_output,
)
from envforge.summary.render import render_summary, summary_marker

__all__ = [
    "CommentResult",
    "DatabaseSummary",
    "Diagnostic",
    "EnvironmentSummary",
    "ImageSummary",
    "Link",
    "PullRequestCommenter",
    "PullRequestRef",
    "StepTiming",
    "artifact_key",
    "database_from_output",
    "image_from_output",
    "publish_summary_artifact",
    "pull_request_from_source",
    "render_summary",
    "summary_marker",
]
