"""Egress: the one HTTP client through which actions reach another machine.

Every request, and every redirect it is answered with, is checked before it is sent:

- the URL is parsed (``httpx.URL``), never prefix-matched: scheme http(s) only, no userinfo
  (``https://allowed.example@evil``), host lower-cased and IDNA-encoded, a trailing dot
  dropped, numeric host forms other than a canonical address refused (``2130706433``,
  ``0x7f.1``, ``127.1``), and no ``.``/``..`` segment or encoded ``/``, ``\\`` or NUL in the
  path, raw or percent-encoded;
- it must match an :class:`AllowRule`: the same origin (scheme, host, port) and a path under
  the rule's path, compared segment by segment;
- the host's addresses are resolved once and every one must be public; a loopback,
  link-local, private, multicast or unspecified address is only reached when the rule says so
  explicitly (its host is such an address written out, or the operator configured it as
  ``private``). The connection then goes to the address that was checked (no second lookup
  for a rebinding name to change);
- a :class:`Credential` is bound to one origin: its header goes on a request to exactly that
  origin and never on a redirect, whatever the redirect's target; a credential header the
  caller passes itself (``Authorization``, ``Cookie``, ``PRIVATE-TOKEN``...) is dropped on
  every redirect too;
- every transfer has a :class:`TransferBudget`: bytes read, an overall deadline (not only a
  per-read timeout) and a number of redirects.

Redirects are followed here, one by one, so each hop is checked like the first request. How
a URL is parsed and matched against a rule is envforge.capabilities.egress_urls (its names
are importable from here too).
Built on httpx; the transport is injectable (``httpx.MockTransport`` in unit tests).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from envforge.capabilities.egress_urls import (
    AllowRule,
    Origin,
    ParsedUrl,
    is_ip_address,
    is_private_address,
    parse_url,
    quote_segment,
    redact_userinfo,
)
from envforge.errors import (
    BudgetExceededError,
    ConfigurationError,
    EgressFailedError,
    EgressRefusedError,
)

__all__ = ["AllowRule", "Answer", "Credential", "EgressClient", "EgressPolicy", "Origin",
           "ParsedUrl", "Resolver", "Transfer", "TransferBudget", "parse_url", "quote_segment",
           "redact_userinfo", "system_resolver"]

#: Resolves (host, port) to the IP addresses a connection would use.
Resolver = Callable[[str, int], list[str]]

_REDIRECTS = {301, 302, 303, 307, 308}
#: request headers that carry a credential (dropped on every redirect, like Credential's)
_CREDENTIAL_HEADERS = {"authorization", "proxy-authorization", "cookie", "private-token",
                       "x-api-key", "x-auth-token"}


@dataclass(frozen=True)
class Credential:
    """A header that authenticates to exactly one origin. ``id`` names the credential (a
    setting's name, or a digest of a token) for cache tenancy; it is never the secret."""

    origin: Origin
    header: str
    value: str = field(repr=False)
    id: str = ""

    @classmethod
    def bearer(cls, origin: Origin, token: str, id: str, header: str = "Authorization",
               scheme: str = "Bearer") -> Credential:
        value = f"{scheme} {token}" if scheme else token
        return cls(origin, header, value, id)


@dataclass(frozen=True)
class TransferBudget:
    """What one transfer (a request and its redirects) may use."""

    max_bytes: int = 50 * 1024 * 1024
    deadline_seconds: float = 120.0
    max_redirects: int = 5
    #: entries of an archive or a listing; enforced by whoever unpacks (see budgets.py)
    max_entries: int = 20_000


#: Seconds a name lookup may take (getaddrinfo has no timeout of its own).
RESOLVE_TIMEOUT_S = 10.0


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (what a connection could use), within
    :data:`RESOLVE_TIMEOUT_S` (a lookup left hanging runs out in a daemon thread)."""
    answer: list[Any] = []

    def lookup() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as e:
            answer.append(e)

    worker = threading.Thread(target=lookup, name=f"resolve {host}", daemon=True)
    worker.start()
    worker.join(RESOLVE_TIMEOUT_S)
    if not answer:
        raise EgressFailedError(f"host {host!r} did not resolve within "
                                f"{RESOLVE_TIMEOUT_S:g} s")
    if isinstance(answer[0], BaseException):
        raise EgressFailedError(f"host {host!r} does not resolve ({answer[0]})")
    return sorted({str(info[4][0]) for info in answer[0]})


@dataclass(frozen=True)
class EgressPolicy:
    """Which URLs may be reached and how: the allowlist, the budget, the resolver and the
    transport. Hand it down; it makes an :class:`EgressClient` per use."""

    rules: tuple[AllowRule, ...] = ()
    budget: TransferBudget = TransferBudget()
    resolver: Resolver = system_resolver
    transport: httpx.BaseTransport | None = None
    user_agent: str = "envforge"

    @classmethod
    def deny_all(cls) -> EgressPolicy:
        return cls(())

    @classmethod
    def from_entries(cls, entries: Iterable[str], private_hosts: Iterable[str] = (),
                     budget: TransferBudget | None = None) -> EgressPolicy:
        """Rules from ``ENVFORGE_FETCH_ALLOW``-style entries; ``private_hosts`` names hosts
        the operator allows to resolve to private addresses."""
        private = {h.lower().rstrip(".") for h in private_hosts}
        rules = []
        for entry in entries:
            try:
                rule = AllowRule.parse(entry)
            except EgressRefusedError as e:
                raise ConfigurationError(
                    f"ENVFORGE_FETCH_ALLOW entry {entry[:200]!r} is not a URL envforge can "
                    f"allow ({e}); write it as https://host[:port]/path") from None
            if rule.origin.host in private:
                rule = AllowRule(rule.origin, rule.path, True)
            rules.append(rule)
        return cls(tuple(rules), budget or TransferBudget())

    def with_rules(self, *rules: AllowRule) -> EgressPolicy:
        """This policy with more rules (a configured provider's API, for one action)."""
        return EgressPolicy((*self.rules, *rules), self.budget, self.resolver, self.transport,
                            self.user_agent)

    def rule_for(self, url: ParsedUrl) -> AllowRule | None:
        return next((r for r in self.rules if r.matches(url)), None)

    def check(self, text: str | httpx.URL) -> tuple[ParsedUrl, AllowRule, list[str]]:
        """The parsed URL, the rule that allows it and the checked addresses to connect to,
        or EgressRefusedError (one line, naming the URL and what would allow it)."""
        url = parse_url(text)
        rule = self.rule_for(url)
        if rule is None:
            allowed = " ".join(str(r) for r in self.rules) or "nothing"
            raise EgressRefusedError(
                f"URL {redact_userinfo(str(text))[:200]!r} is not allowed (allowed: {allowed}); "
                "an operator adds its origin and path to ENVFORGE_FETCH_ALLOW")
        addresses = self.resolver(url.origin.host, url.origin.port)
        if not addresses:
            raise EgressFailedError(f"host {url.origin.host!r} resolves to no address")
        if not rule.private:
            bad = [a for a in addresses if is_private_address(a)]
            if bad:
                raise EgressRefusedError(
                    f"URL {str(url)[:200]!r}: host {url.origin.host!r} resolves to "
                    f"{bad[0]}, a loopback, private or link-local address; only an "
                    "allowlist entry naming that address itself reaches it")
        return url, rule, addresses

    def client(self, credentials: Sequence[Credential] = (),
               budget: TransferBudget | None = None) -> EgressClient:
        return EgressClient(self, tuple(credentials), budget or self.budget)


class EgressClient:
    """Requests under one policy, with credentials bound to their origins."""

    def __init__(self, policy: EgressPolicy, credentials: tuple[Credential, ...],
                 budget: TransferBudget) -> None:
        self.policy = policy
        self.credentials = credentials
        self.budget = budget
        self._http = httpx.Client(transport=policy.transport, follow_redirects=False,
                                  trust_env=False)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EgressClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _scrub(self, text: str) -> str:
        for credential in self.credentials:
            token = credential.value.split(" ", 1)[-1]
            if token:
                text = text.replace(token, "***")
        return text

    def _send(self, method: str, url: ParsedUrl, addresses: list[str],
              headers: Mapping[str, str], content: bytes | None, deadline: float,
              first: bool) -> httpx.Response:
        # identity: a compressed answer would be inflated before the byte budget saw it
        sent = {"User-Agent": self.policy.user_agent, "Accept-Encoding": "identity", **headers}
        for credential in self.credentials:
            # bound to its origin, and never on a redirect (even back to the same origin)
            if first and credential.origin == url.origin:
                sent[credential.header] = credential.value
        target = url.url
        extensions: dict[str, Any] = {}
        host = url.origin.host
        if not is_ip_address(host):
            # connect to the address that was checked: a second lookup could be rebound
            address = addresses[0]
            target = target.copy_with(host=address)
            sent["Host"] = url.url.netloc.decode("ascii")
            if url.origin.scheme == "https":
                extensions["sni_hostname"] = host
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BudgetExceededError(f"URL {str(url)[:200]!r}: no answer within the "
                                      f"{self.budget.deadline_seconds:g} s budget")
        request = self._http.build_request(method, target, headers=sent, content=content,
                                           timeout=httpx.Timeout(remaining),
                                           extensions=extensions)
        try:
            return self._http.send(request, stream=True)
        except httpx.TimeoutException:
            raise BudgetExceededError(f"URL {str(url)[:200]!r}: no answer within the "
                                      f"{self.budget.deadline_seconds:g} s budget") from None
        except httpx.HTTPError as e:
            error = EgressFailedError(f"URL {str(url)[:200]!r} did not answer "
                                      f"({type(e).__name__}: {self._scrub(str(e))[:160]})")
            # a connection that never opened sent nothing: safe to retry even a POST
            error.unsent = isinstance(e, httpx.ConnectError)
            raise error from None

    @contextmanager
    def stream(self, method: str, url: str, headers: Mapping[str, str] | None = None,
               content: bytes | None = None) -> Iterator[Transfer]:
        """Open ``url`` (following checked redirects); yields a :class:`Transfer` whose
        reads count against the budget."""
        deadline = time.monotonic() + self.budget.deadline_seconds
        current, _rule, addresses = self.policy.check(url)
        hops = 0
        while True:
            response = self._send(method, current, addresses, headers or {}, content, deadline,
                                  first=hops == 0)
            if response.status_code not in _REDIRECTS or "location" not in response.headers:
                break
            response.close()
            hops += 1
            if hops > self.budget.max_redirects:
                raise BudgetExceededError(f"URL {url[:200]!r}: more than "
                                          f"{self.budget.max_redirects} redirects")
            location = response.headers["location"]
            try:
                joined = current.url.join(location)
            except (httpx.InvalidURL, ValueError):
                raise EgressRefusedError(f"URL {url[:200]!r} redirects to a location that "
                                         "does not parse") from None
            current, _rule, addresses = self.policy.check(joined)
            # a header the caller set to authenticate is a credential too: never redirected
            headers = {k: v for k, v in (headers or {}).items()
                       if k.lower() not in _CREDENTIAL_HEADERS}
            if response.status_code == 303 or (response.status_code in (301, 302)
                                               and method == "POST"):
                method, content = "GET", None
        try:
            yield Transfer(response, current, self.budget, deadline)
        finally:
            response.close()

    def request(self, method: str, url: str, headers: Mapping[str, str] | None = None,
                json: Any = None, content: bytes | None = None) -> Answer:
        """One request read whole (within the byte budget)."""
        extra = dict(headers or {})
        if json is not None:
            import json as _json

            content = _json.dumps(json).encode()
            extra.setdefault("Content-Type", "application/json")
        with self.stream(method, url, extra, content) as transfer:
            body = transfer.read_all()
            return Answer(transfer.response.status_code, body, transfer.url,
                          dict(transfer.response.headers))


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    url: ParsedUrl
    headers: Mapping[str, str]

    def json(self) -> Any:
        import json as _json

        return _json.loads(self.body) if self.body else {}

    def text(self, limit: int = 200) -> str:
        return self.body[:limit].decode("utf-8", "replace")


class Transfer:
    """An open answer whose body is read against the byte budget and the deadline."""

    def __init__(self, response: httpx.Response, url: ParsedUrl, budget: TransferBudget,
                 deadline: float) -> None:
        self.response = response
        self.url = url
        self.budget = budget
        self.deadline = deadline
        self.read_bytes = 0

    @property
    def status(self) -> int:
        return self.response.status_code

    def iter_bytes(self) -> Iterator[bytes]:
        declared = self.response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.budget.max_bytes:
            raise BudgetExceededError(
                f"URL {str(self.url)[:200]!r}: {int(declared):,} bytes announced, more than the "
                f"{self.budget.max_bytes:,}-byte budget (ENVFORGE_FETCH_MAX_BYTES)")
        try:
            for chunk in self.response.iter_bytes():
                self.read_bytes += len(chunk)
                if self.read_bytes > self.budget.max_bytes:
                    raise BudgetExceededError(
                        f"URL {str(self.url)[:200]!r}: more than the "
                        f"{self.budget.max_bytes:,}-byte budget (ENVFORGE_FETCH_MAX_BYTES)")
                if time.monotonic() > self.deadline:
                    raise BudgetExceededError(
                        f"URL {str(self.url)[:200]!r}: not finished within the "
                        f"{self.budget.deadline_seconds:g} s budget")
                yield chunk
        except httpx.TimeoutException:
            raise BudgetExceededError(f"URL {str(self.url)[:200]!r}: not finished within the "
                                      f"{self.budget.deadline_seconds:g} s budget") from None
        except httpx.HTTPError as e:
            raise EgressFailedError(f"URL {str(self.url)[:200]!r}: the transfer broke off "
                                    f"({type(e).__name__})") from None

    def read_all(self) -> bytes:
        return b"".join(self.iter_bytes())
