"""Secret values passed to one run, for ``${{ secrets.NAME }}`` as Backstage renders it.

A value reaches a run in one of two ways, never as a flow parameter: ``envforge run --secret
NAME=VALUE`` / ``--secret NAME=@FILE`` (the CLI hands the values to the in-process flow run
through its services), or the run-template flow's ``secrets`` parameter, which names Prefect
Secret blocks (``NAME`` reads the block ``name``, ``NAME=BLOCK`` the block ``BLOCK``). Every
value is registered with the process's redactor (envforge.secrets.redaction) as the run
starts, so logs, errors and the run's result show a mask instead; before a ``publish:*`` step
the workspace is scanned, so a value a skeleton rendered never reaches Git.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from envforge.core.secret_parts import holds_part, secret_parts
from envforge.errors import ConfigurationError, SecretReferenceError, TemplateError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_BLOCK = re.compile(r"[a-z0-9][a-z0-9-]*")
#: at most this much of a ``--secret NAME=@FILE`` file is read
MAX_SECRET_FILE_BYTES = 64 * 1024
#: shorter values are refused: masking "1" or "dev" would garble every log line, and every
#: workspace file would look like it holds the secret
MIN_SECRET_LENGTH = 4


@dataclass(frozen=True)
class SecretRef:
    """What ``${{ secrets.NAME }}`` evaluates to when the run knows the name but holds no value
    (``templates validate``/``check``): a name, never a value."""

    name: str

    def __str__(self) -> str:
        return f"secret:{self.name}"


def how_to_pass(name: str) -> str:
    """The one sentence every 'secret not given' message ends with."""
    return (f"pass it with 'envforge run ... --secret {name}=VALUE' (or "
            f"'--secret {name}=@FILE'), or name a Prefect Secret block in the run-template "
            f"flow's 'secrets' parameter (['{name}'] reads the block "
            f"'{default_block_name(name)}', ['{name}=BLOCK'] the block BLOCK)")


class RunSecrets(dict[str, Any]):
    """``secrets`` in expressions: each name the run was given reads as its value (a
    :class:`SecretRef` for a name given without one); any other name is an error that says how
    to pass it, never an empty string, so a typo never renders a blank credential."""

    def __init__(self, values: Mapping[str, str], names: Iterable[str] = ()) -> None:
        super().__init__({name: SecretRef(name) for name in names})
        self.update(values)

    def __missing__(self, key: str) -> Any:
        known = ", ".join(sorted(self)) or "none"
        raise TemplateError(f"secrets.{key} was not given to this run (given: {known}); "
                            + how_to_pass(key))

    def __repr__(self) -> str:  # a value never shows in a debugger, a log or a traceback
        return f"RunSecrets({sorted(self)})"


def check_secret_values(values: Mapping[str, str]) -> None:
    """Refuse values too short to mask (naming the secret, never showing the value)."""
    for name, value in values.items():
        if not isinstance(value, str) or len(value.strip()) < MIN_SECRET_LENGTH:
            raise ConfigurationError(
                f"secrets.{name}: the value is shorter than {MIN_SECRET_LENGTH} characters, "
                "too short to mask in logs and to tell apart in files; a value that short is "
                "not a secret: pass it as a parameter instead")


def default_block_name(name: str) -> str:
    """The Prefect Secret block a bare ``NAME`` reads: block names are lowercase and dashed."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "secret"


def parse_secret_assignments(items: Sequence[str]) -> dict[str, str]:
    """``--secret NAME=VALUE`` / ``--secret NAME=@FILE`` options as {name: value}. A file is
    read as text, one trailing line end dropped. Errors name the option, never the value."""
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not _NAME.fullmatch(name):
            # without '=' the whole option may be the value: never echo it
            shown = name if sep and _NAME.fullmatch(name) else "NAME"
            raise ConfigurationError(
                f"--secret {shown}=...: expected NAME=VALUE or NAME=@FILE, with NAME made of "
                "letters, digits, '_' and '-' (as in ${{ secrets.NAME }})")
        if name in values:
            raise ConfigurationError(f"--secret {name} is given twice; give it once")
        if value.startswith("@"):
            value = _read_secret_file(name, Path(value[1:]).expanduser())
        if not value:
            raise ConfigurationError(f"--secret {name}: the value is empty; give a value, "
                                     "or leave the option out")
        values[name] = value
    check_secret_values(values)  # before any flow run starts
    return values


def _read_secret_file(name: str, path: Path) -> str:
    # O_NONBLOCK: a FIFO (or a device) never hangs the open; only a regular file is read
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise ConfigurationError(f"--secret {name}=@{path}: cannot read the file "
                                 f"({e.strerror or type(e).__name__}); give a readable file"
                                 ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConfigurationError(f"--secret {name}=@{path}: not a regular file (a pipe, "
                                 "a device or a folder); give a file holding the value")
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_SECRET_FILE_BYTES + 1)
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise ConfigurationError(f"--secret {name}=@{path}: the file is over "
                                 f"{MAX_SECRET_FILE_BYTES // 1024} KiB; a secret is smaller")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"--secret {name}=@{path}: the file is not UTF-8 text"
                                 ) from None
    return text.removesuffix("\n").removesuffix("\r")


def parse_block_specs(specs: Sequence[str]) -> dict[str, str]:
    """The run-template flow's ``secrets`` parameter (``NAME`` or ``NAME=BLOCK``) as
    {secret name: Prefect Secret block name}."""
    blocks: dict[str, str] = {}
    for spec in specs:
        name, sep, block = str(spec).partition("=")
        name, block = name.strip(), block.strip()
        block = block if sep else default_block_name(name)
        if not _NAME.fullmatch(name) or not _BLOCK.fullmatch(block):
            raise ConfigurationError(
                f"secrets parameter item {spec!r}: expected NAME or NAME=BLOCK, NAME as in "
                "${{ secrets.NAME }} and BLOCK a Prefect Secret block's name (lowercase "
                "letters, digits, '-'); the parameter names blocks, never values")
        if name in blocks:
            raise ConfigurationError(f"secrets parameter: {name} is named twice; name it once")
        blocks[name] = block
    return blocks


def secret_pattern(value: str) -> re.Pattern[str]:
    """What finds ``value`` in a text after the template's filters reshaped it: as is or
    reversed (``reverse``), in any case (``upper``, ``lower``, ``title``, ``capitalize``),
    percent-encoded (``urlencode``), or with one short separator put between every character
    (``list | join('-')``). A secret cut into parts (``truncate``, a slice) is found by
    :func:`holds_secret` and :func:`files_holding_secrets` through its parts
    (envforge.core.secret_parts)."""
    forms = {value, value[::-1], quote(value, safe=""), quote(value, safe="-_.!~*'()")}
    alternatives = [re.escape(form) for form in sorted(forms)]
    for chars in (value, value[::-1]):
        if len(chars) <= 256:
            sep = rf"(?P<s{len(alternatives)}>[^A-Za-z0-9]{{1,3}})"
            alternatives.append(re.escape(chars[0]) + sep + f"(?P=s{len(alternatives)})".join(
                re.escape(c) for c in chars[1:]))
    return re.compile("|".join(f"(?:{a})" for a in alternatives), re.IGNORECASE)


def secret_forms(value: str) -> set[str]:
    """The literal forms of ``value`` a template's filters make without cutting it (for the
    log redactor, which masks literals): as is, reversed, upper/lower/title/capitalized,
    percent-encoded. :func:`secret_pattern` finds these and interleaved ones in files and
    fields."""
    forms = {value, value[::-1], quote(value, safe=""), quote(value, safe="-_.!~*'()")}
    return {f for form in forms for f in (form, form.upper(), form.lower(), form.title(),
                                          form.capitalize())}


class SecretFinder:
    """Finds one secret's value in texts: the forms :func:`secret_pattern` finds and its parts
    (envforge.core.secret_parts), both worked out once for every text it is asked about."""

    def __init__(self, value: str) -> None:
        self.pattern = secret_pattern(value)
        self.parts = secret_parts(value)

    def found_in(self, text: str) -> bool:
        return self.pattern.search(text) is not None or holds_part(text, self.parts)


def _finders(secrets: Mapping[str, str]) -> dict[str, SecretFinder]:
    return {n: SecretFinder(v) for n, v in secrets.items() if isinstance(v, str) and v}


def holds_secret(text: str, value: str) -> bool:
    """Whether ``text`` holds ``value`` in any form :func:`secret_pattern` finds, or a part of
    it (:func:`envforge.core.secret_parts.secret_parts`)."""
    return bool(value) and SecretFinder(value).found_in(text)


def secret_fields(value: Any, secrets: Mapping[str, str], where: str) -> list[tuple[str, str]]:
    """(field path, secret name) for every string in ``value`` holding a secret's value (in
    any form :func:`secret_pattern` finds, or a part of it)."""
    return _fields_holding(value, _finders(secrets), where)


def _fields_holding(value: Any, finders: Mapping[str, SecretFinder],
                    where: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if isinstance(value, str):
        found += [(where, n) for n, finder in finders.items() if finder.found_in(value)]
    elif isinstance(value, Mapping):
        for k, v in value.items():
            found += _fields_holding(v, finders, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found += _fields_holding(v, finders, f"{where}[{i}]")
    return found


def refuse_secret_values(value: Any, secrets: Mapping[str, str], where: str) -> None:
    """Raise when an input bound for Git (not its ``token``) holds a secret's value."""
    found = secret_fields(value, secrets, where)
    if found:
        listed = ", ".join(f"{path} (secrets.{name})" for path, name in found)
        raise SecretReferenceError(
            f"{listed}: holds a secret's value, and this field ends up in Git; use the secret "
            "only in a 'token' input or a non-Git action, or deliver it with vault:secrets")


def files_holding_secrets(root: Path, secrets: Mapping[str, str],
                          max_bytes: int = 2_000_000) -> list[tuple[str, str]]:
    """(file, secret name) for each workspace file (no link followed) holding a value."""
    wanted = _finders(secrets)
    hits: list[tuple[str, str]] = []
    if not wanted or not root.is_dir():
        return hits
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file() or ".git" in path.relative_to(root).parts:
            continue
        # decoded losslessly either way: UTF-8 where it is text, else one char per byte
        raw = path.read_bytes()[:max_bytes]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        hits += [(path.relative_to(root).as_posix(), n) for n, finder in wanted.items()
                 if finder.found_in(text)]
    return hits
