"""The plain data an environment summary is made of, built by flows from their results.

Everything here is simple values (str, int, float, lists), so a summary can be built from
dicts that crossed a process boundary (``EnvironmentSummary.from_dict``) or from the runner's
``RunResult`` (``from_run_result``), and rendered without Prefect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Link:
    """A titled link shown in the summary (the environment's URL, dashboards)."""
    title: str
    url: str


@dataclass(frozen=True)
class ImageSummary:
    """An image the run built or reused: its reference and registry digest."""

    name: str
    digest: str | None = None
    cached: bool | None = None  # True: the registry already had this build


@dataclass(frozen=True)
class DatabaseSummary:
    """A database the environment got: how it was made and how many rows it holds."""

    name: str
    strategy: str  # seed | clone | subset | snapshot | ...
    rows: int | None = None
    tables: Mapping[str, int] = field(default_factory=dict)  # row count per table, if known
    seconds: float | None = None


@dataclass(frozen=True)
class StepTiming:
    """One step of the run: id, action, status and how long it took."""
    step_id: str
    action: str
    status: str
    seconds: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Diagnostic:
    """Extra text for a failed run, e.g. a failing pod's events or its last log lines."""

    title: str
    text: str


@dataclass(frozen=True)
class EnvironmentSummary:
    """What a lifecycle run tells people: status, URL, steps, images, databases, diagnosis."""
    name: str
    status: str  # completed | failed | rolled-back | destroyed | ...
    url: str | None = None
    template: str | None = None
    operation: str | None = None  # create | update | destroy | ...
    links: Sequence[Link] = ()
    images: Sequence[ImageSummary] = ()
    databases: Sequence[DatabaseSummary] = ()
    steps: Sequence[StepTiming] = ()
    source: Mapping[str, Any] = field(default_factory=dict)
    message: str | None = None  # failure reason or the template's output text
    diagnostics: Sequence[Diagnostic] = ()
    run_url: str | None = None  # the Prefect flow run's page

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnvironmentSummary:
        """Build from plain data (unknown keys are ignored; nested items may be dicts)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["links"] = tuple(_build(Link, x) for x in data.get("links") or ())
        values["images"] = tuple(_build(ImageSummary, x) for x in data.get("images") or ())
        values["databases"] = tuple(_build(DatabaseSummary, x)
                                    for x in data.get("databases") or ())
        values["steps"] = tuple(_build(StepTiming, x) for x in data.get("steps") or ())
        values["diagnostics"] = tuple(_build(Diagnostic, x)
                                      for x in data.get("diagnostics") or ())
        return cls(**values)

    @classmethod
    def from_run_result(cls, name: str, result: Mapping[str, Any], *, status: str | None = None,
                        **extra: Any) -> EnvironmentSummary:
        """From ``RunResult.to_dict()``: template, step timings and ``spec.output`` links.

        ``extra`` sets the other fields (url, images, databases, source, ...)."""
        steps = [StepTiming(step_id=s["id"], action=s.get("action", ""),
                            status=s.get("status", ""), seconds=s.get("duration_s"),
                            reason=s.get("reason"))
                 for s in result.get("steps") or ()]
        output = result.get("output") or {}
        links = [Link(str(x.get("title") or x.get("url")), str(x.get("url")))
                 for x in output.get("links") or () if isinstance(x, Mapping) and x.get("url")]
        if status is None:
            status = "failed" if any(s.status == "failed" for s in steps) else "completed"
        data: dict[str, Any] = {"name": name, "status": status, "template": result.get(
            "template"), "steps": steps, "links": links}
        if output.get("text") and "message" not in extra:
            data["message"] = str(output["text"])
        data.update(extra)
        return cls.from_dict(data)


def image_from_output(output: Mapping[str, Any]) -> ImageSummary:
    """An ``image:build`` step's output as an ImageSummary."""
    return ImageSummary(name=str(output.get("imageTag") or output.get("image")),
                        digest=output.get("digest"), cached=output.get("cached"))


def database_from_output(output: Mapping[str, Any], strategy: str) -> DatabaseSummary:
    """A ``db:*`` step's output (database, rows, seconds) as a DatabaseSummary."""
    return DatabaseSummary(name=str(output.get("database")), strategy=strategy,
                           rows=output.get("rows"), seconds=output.get("seconds"))


def _build(kind: type[Any], item: Any) -> Any:
    if isinstance(item, kind):
        return item
    if isinstance(item, Mapping):
        known = {f.name for f in fields(kind)}
        return kind(**{k: v for k, v in item.items() if k in known})
    raise TypeError(f"summary: expected a {kind.__name__} or a mapping, got {type(item).__name__}")
