"""Egress URLs: how a URL is parsed and checked before the egress client sends anything, and
the allowlist rule it must match (envforge.capabilities.egress sends; this module decides).

A URL is parsed (``httpx.URL``), never prefix-matched: scheme http(s) only, no userinfo
(``https://allowed.example@evil``), host lower-cased and IDNA-encoded, a trailing dot dropped,
numeric host forms other than a canonical address refused (``2130706433``, ``0x7f.1``,
``127.1``), and no ``.``/``..`` segment or encoded ``/``, ``\\`` or NUL in the path, raw or
percent-encoded. An :class:`AllowRule` is an origin (scheme, host, port) and a path compared
segment by segment; a private address is allowed only when the rule names it explicitly.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

import httpx

from envforge.errors import EgressRefusedError

_DEFAULT_PORTS = {"http": 80, "https": 443}
#: a host made of hex/octal/decimal number parts: an IPv4 address in a non-canonical spelling
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*$")


@dataclass(frozen=True, order=True)
class Origin:
    """(scheme, host, port) as a browser compares them, normalised."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = _DEFAULT_PORTS.get(self.scheme)
        return f"{self.scheme}://{host}" + ("" if self.port == default else f":{self.port}")


@dataclass(frozen=True)
class ParsedUrl:
    """A URL that passed :func:`parse_url`: its origin and its decoded path segments."""

    url: httpx.URL
    origin: Origin
    segments: tuple[str, ...]

    def __str__(self) -> str:
        return str(self.url)


def _canonical_host(url: httpx.URL, shown: str) -> str:
    try:
        raw = url.raw_host.decode("ascii")
    except UnicodeDecodeError:
        raise EgressRefusedError(f"URL {shown!r}: its host is not a valid name") from None
    host = raw.lower().rstrip(".")
    if not host:
        raise EgressRefusedError(f"URL {shown!r} names no host")
    if ":" in host:  # an IPv6 literal: one spelling
        try:
            return str(ipaddress.IPv6Address(host.split("%", 1)[0]))
        except ValueError:
            raise EgressRefusedError(f"URL {shown!r}: {host!r} is not an IPv6 address") from None
    if _NUMERIC_HOST.fullmatch(host):
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError:
            address = None
        if address is None or str(address) != host:
            raise EgressRefusedError(
                f"URL {shown!r}: host {host!r} is an address in a non-canonical form; write "
                "it as a dotted quad (a.b.c.d) or a name")
    if not re.fullmatch(r"[a-z0-9_.-]+", host) or ".." in host:
        raise EgressRefusedError(f"URL {shown!r}: host {host!r} is not a valid name")
    return host


def parse_url(text: str | httpx.URL) -> ParsedUrl:
    """``text`` parsed and normalised, or EgressRefusedError saying what is wrong with it."""
    shown = str(text)[:200]
    if isinstance(text, str) and any(c in text for c in "\\\0\r\n\t "):
        raise EgressRefusedError(f"URL {shown!r} holds a backslash, a space or a control "
                                 "character")
    try:
        url = text if isinstance(text, httpx.URL) else httpx.URL(text)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise EgressRefusedError(f"URL {shown!r} does not parse") from None
    scheme = url.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise EgressRefusedError(f"URL {shown!r}: only http and https are reached, not "
                                 f"{scheme or 'a relative URL'!r}")
    if url.userinfo:
        raise EgressRefusedError(f"URL {redact_userinfo(shown)!r} carries a user name before "
                                 "'@': credentials are configured, never written in a URL")
    host = _canonical_host(url, shown)
    port = url.port if url.port is not None else _DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise EgressRefusedError(f"URL {shown!r}: port {port} is not a valid port")
    segments: list[str] = []
    raw_path = url.raw_path.split(b"?", 1)[0].decode("ascii", "replace")
    for raw in raw_path.split("/")[1:]:
        try:
            decoded = urllib.parse.unquote(raw, errors="strict") if "%" in raw else raw
        except UnicodeDecodeError:
            raise EgressRefusedError(f"URL {shown!r}: its path holds a percent-encoding that "
                                     "is not UTF-8") from None
        pieces = decoded.replace("\\", "/").split("/")
        if "\0" in decoded or any(piece in (".", "..") for piece in pieces):
            raise EgressRefusedError(
                f"URL {shown!r}: its path holds a '.' or '..' segment or a NUL (raw or "
                "percent-encoded); give the plain path")
        segments.append(decoded)
    return ParsedUrl(url, Origin(scheme, host, port), tuple(segments))


def quote_segment(text: str) -> str:
    """``text`` as one URL path segment (every ``/`` encoded, GitLab's project paths)."""
    return urllib.parse.quote(text, safe="")


def redact_userinfo(text: str) -> str:
    return re.sub(r"(://)[^/@\s]*@", r"\1***@", text)


def is_private_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
        elif ip.teredo is not None:
            ip = ip.teredo[1]
    return bool(ip.is_loopback or ip.is_link_local or ip.is_private or ip.is_multicast
                or ip.is_unspecified or ip.is_reserved or not ip.is_global)


def is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class AllowRule:
    """One allowlist entry: an origin and a path prefix (whole segments).

    ``private`` lets the origin's host resolve to a loopback/private/link-local address; it
    is true by itself when the rule's host *is* such an address written out (the operator
    named it), and otherwise only when the operator says so."""

    origin: Origin
    path: tuple[str, ...] = ()
    private: bool = False

    @classmethod
    def parse(cls, text: str, private: bool | None = None) -> AllowRule:
        """A rule from ``https://host[:port][/path]`` (a trailing ``/`` does not matter)."""
        parsed = parse_url(text)
        segments = tuple(s for s in parsed.segments if s)
        host = parsed.origin.host
        explicit = is_ip_address(host) and is_private_address(host)
        return cls(parsed.origin, segments, explicit if private is None else private)

    def matches(self, url: ParsedUrl) -> bool:
        if url.origin != self.origin:
            return False
        segments = tuple(s for s in url.segments if s) if self.path else url.segments
        return segments[:len(self.path)] == self.path

    def __str__(self) -> str:
        return str(self.origin) + "/" + "/".join(self.path)
