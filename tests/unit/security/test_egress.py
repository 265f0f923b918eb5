"""The egress capability against hostile URLs, redirects and slow or huge answers
(httpx.MockTransport: no network)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envforge.capabilities import AllowRule, Credential, EgressPolicy, TransferBudget, parse_url
from envforge.errors import BudgetExceededError, EgressRefusedError

TOKEN = "tok-SECRET-123"
PUBLIC = "93.184.216.34"


def resolver(table: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    return lambda host, port: table.get(host, [PUBLIC])


def policy(handler: Callable[[httpx.Request], httpx.Response], *allow: str,
           table: dict[str, list[str]] | None = None,
           budget: TransferBudget | None = None) -> EgressPolicy:
    base = EgressPolicy.from_entries(allow, budget=budget)
    return EgressPolicy(base.rules, base.budget, resolver(table or {}),
                        httpx.MockTransport(handler))


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=b"fine")


@pytest.mark.parametrize("url", [
    "https://allowed.example@evil.example/acme/x.tgz",     # userinfo makes evil the host
    "https://allowed.example.evil.example/acme/x.tgz",     # a longer host with the prefix
    "https://allowed.example/acme/../victim/x.tgz",        # dot segments
    "https://allowed.example/acme/%2e%2e/victim/x.tgz",    # encoded dot segments
    "https://allowed.example/acme%2f..%2fvictim/x.tgz",    # encoded slash
    "https://allowed.example/acme-evil/x.tgz",             # a prefix that is not a segment
    "https://allowed.example:8443/acme/x.tgz",             # another port
    "http://allowed.example/acme/x.tgz",                   # another scheme
    "https://allowed.example\\@evil.example/acme/x.tgz",   # backslash tricks
    "file:///etc/passwd",
    "ftp://allowed.example/acme/x.tgz",
])
def test_a_url_outside_the_allowlist_is_refused_before_any_request(url: str) -> None:
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    with policy(record, "https://allowed.example/acme/").client() as client, \
            pytest.raises(EgressRefusedError):
        client.request("GET", url)
    assert sent == []


def test_an_allowed_url_is_fetched_with_its_normalised_form() -> None:
    with policy(ok, "https://Allowed.Example/acme").client() as client:
        answer = client.request("GET", "HTTPS://allowed.example.:443/acme/x.tgz")
    assert answer.status == 200 and answer.body == b"fine"


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1", "0177.0.0.1",
                                  "0x7f000001", "017700000001"])
def test_numeric_spellings_of_an_address_are_refused_even_in_the_allowlist(host: str) -> None:
    from envforge.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"non-canonical|does not parse"):
        EgressPolicy.from_entries([f"http://{host}/"])
    with policy(ok, "http://127.0.0.1/").client() as client, \
            pytest.raises(EgressRefusedError, match=r"non-canonical|does not parse"):
        client.request("GET", f"http://{host}/x")


@pytest.mark.parametrize("host", ["localhost", "localhost.", "metadata.internal",
                                  "rebind.example"])
@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "169.254.169.254", "10.1.2.3",
                                     "0.0.0.0", "::ffff:127.0.0.1", "fe80::1", "192.168.1.1",
                                     "100.64.0.1", "fc00::1"])
def test_an_allowlisted_name_that_resolves_to_a_private_address_is_refused(
        host: str, address: str) -> None:
    table = {host.rstrip("."): [address]}
    with policy(ok, f"http://{host}/", table=table).client() as client, \
            pytest.raises(EgressRefusedError, match="loopback, private or link-local"):
        client.request("GET", f"http://{host}/x")


def test_a_name_resolving_to_loopback_is_refused_and_an_explicit_address_is_not() -> None:
    table = {"innocent.example": ["127.0.0.1"]}
    with policy(ok, "https://innocent.example/", table=table).client() as client, \
            pytest.raises(EgressRefusedError, match="loopback, private or link-local"):
        client.request("GET", "https://innocent.example/a")
    with policy(ok, "http://127.0.0.1:8080/").client() as client:
        assert client.request("GET", "http://127.0.0.1:8080/a").status == 200
    # one private address among public ones is enough to refuse
    mixed = {"mixed.example": [PUBLIC, "10.0.0.7"]}
    with policy(ok, "https://mixed.example/", table=mixed).client() as client, \
            pytest.raises(EgressRefusedError):
        client.request("GET", "https://mixed.example/a")


def test_the_connection_goes_to_the_checked_address_not_a_second_lookup() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    with policy(record, "https://files.example/").client() as client:
        client.request("GET", "https://files.example/a")
    assert seen[0].url.host == PUBLIC
    assert seen[0].headers["host"] == "files.example"
    assert seen[0].extensions["sni_hostname"] == "files.example"


def test_a_credential_goes_only_to_its_origin_and_never_across_a_redirect() -> None:
    seen: list[tuple[str, str | None]] = []

    def hop(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers["host"], request.headers.get("authorization")))
        if request.url.path == "/acme/x.tgz":
            return httpx.Response(302, headers={"Location": "https://cdn.example/blob"})
        return httpx.Response(200, content=b"data")

    origin = parse_url("https://allowed.example").origin
    credential = Credential.bearer(origin, TOKEN, "t1")
    with policy(hop, "https://allowed.example/acme/", "https://cdn.example/").client(
            [credential]) as client:
        assert client.request("GET", "https://allowed.example/acme/x.tgz").body == b"data"
    assert seen == [("allowed.example", f"Bearer {TOKEN}"), ("cdn.example", None)]


def test_a_redirect_to_a_host_outside_the_allowlist_is_refused() -> None:
    seen: list[str] = []

    def hop(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["host"])
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/"})

    with policy(hop, "https://allowed.example/").client() as client, \
            pytest.raises(EgressRefusedError):
        client.request("GET", "https://allowed.example/a")
    assert seen == ["allowed.example"]


def test_a_credential_for_another_origin_is_never_sent() -> None:
    seen: list[str | None] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200)

    elsewhere = Credential.bearer(parse_url("https://api.github.com").origin, TOKEN, "t")
    with policy(record, "https://evil.example/").client([elsewhere]) as client:
        client.request("GET", "https://evil.example/x")
    assert seen == [None]


def test_redirect_loops_and_huge_or_slow_answers_are_bounded() -> None:
    def loop(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "/again"})

    with policy(loop, "https://a.example/").client() as client, \
            pytest.raises(BudgetExceededError, match="redirects"):
        client.request("GET", "https://a.example/start")

    def huge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter([b"x" * 1024] * 100))

    small = TransferBudget(max_bytes=10_000)
    with policy(huge, "https://a.example/", budget=small).client() as client, \
            pytest.raises(BudgetExceededError, match="10,000-byte budget"):
        client.request("GET", "https://a.example/big")

    def drip() -> Iterator[bytes]:
        for _ in range(50):
            time.sleep(0.05)
            yield b"x"

    def slow(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=drip())

    quick = TransferBudget(deadline_seconds=0.3)
    started = time.monotonic()
    with policy(slow, "https://a.example/", budget=quick).client() as client, \
            pytest.raises(BudgetExceededError, match=r"0\.3 s budget"):
        client.request("GET", "https://a.example/slow")
    assert time.monotonic() - started < 1.5  # an overall deadline, not one per read


def test_deny_all_reaches_nothing() -> None:
    with EgressPolicy.deny_all().client() as client, \
            pytest.raises(EgressRefusedError, match="allowed: nothing"):
        client.request("GET", "https://github.com/")


def test_allow_rule_paths_match_whole_segments() -> None:
    rule = AllowRule.parse("https://github.com/acme")
    assert rule.matches(parse_url("https://github.com/acme/repo"))
    assert not rule.matches(parse_url("https://github.com/acme-evil/repo"))
    assert not rule.matches(parse_url("https://github.com/"))


@pytest.mark.fuzz
@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abc/.%2e@:\\?#", max_size=24))
def test_no_spelling_leaves_the_allowed_path(tail: str) -> None:
    """Fuzzed: whatever follows the allowed prefix, an accepted URL lies under it."""
    rule = AllowRule.parse("https://allowed.example/acme")
    try:
        parsed = parse_url("https://allowed.example/acme/" + tail)
    except EgressRefusedError:
        return
    if rule.matches(parsed):
        assert parsed.origin.host == "allowed.example"
        assert parsed.segments[0] == "acme" and ".." not in parsed.segments


def test_answers_are_asked_for_uncompressed_and_counted_after_decoding() -> None:
    import gzip

    seen: list[str] = []

    def bomb(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["accept-encoding"])
        return httpx.Response(200, headers={"Content-Encoding": "gzip"},
                              content=gzip.compress(b"\0" * 2_000_000))

    small = TransferBudget(max_bytes=100_000)
    with policy(bomb, "https://a.example/", budget=small).client() as client, \
            pytest.raises(BudgetExceededError):
        client.request("GET", "https://a.example/bomb")
    assert seen == ["identity"]


@pytest.mark.parametrize("entry", ["github.com/acme", "ftp://x.example/", "https://a@b/"])
def test_a_bad_allowlist_entry_is_a_configuration_error_naming_the_variable(entry: str) -> None:
    from envforge.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="ENVFORGE_FETCH_ALLOW entry"):
        EgressPolicy.from_entries([entry])


@pytest.mark.parametrize("location", [
    "file:///etc/passwd", "ftp://allowed.example/x", "//evil.example/x",
    "https://evil.example/acme/x", "http://[fe80::1%25eth0]/x", "https://\u0430llowed.example/acme/x",
    "/acme/%c0%ae%c0%ae/secret", "/acme/%2e%2e/secret", "https://allowed.example@evil.example/"])
def test_every_redirect_target_is_checked_like_a_first_request(location: str) -> None:
    seen: list[str] = []

    def hop(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers=[(b"Location", location.encode())])

    with policy(hop, "https://allowed.example/acme/").client() as client, \
            pytest.raises(EgressRefusedError):
        client.request("GET", "https://allowed.example/acme/start")
    assert len(seen) == 1


def test_an_announced_size_over_the_budget_is_refused_before_reading() -> None:
    def big(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": str(10**12)}, content=b"")

    with policy(big, "https://a.example/", budget=TransferBudget(max_bytes=1000)).client() \
            as client, pytest.raises(BudgetExceededError, match="announced"):
        client.request("GET", "https://a.example/x")
