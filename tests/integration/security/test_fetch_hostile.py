"""Hostile remote fetches against real servers on 127.0.0.1 (each allowlisted explicitly, as
the egress capability demands): tokens across redirects, allowlist spellings, private names,
cross-tenant cache reads, slow and huge answers, hostile archives. Each case failed on the
code before envforge.capabilities (string-prefix allowlist, urllib following redirects with
the header, one cache for every caller, per-read timeouts only)."""

from __future__ import annotations

import base64
import io
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from envforge.actions.base import ActionContext
from envforge.actions.fetch import FetchPlain, FetchPlainInput
from envforge.capabilities import Capabilities
from envforge.errors import EnvforgeError, TemplateError
from tests.git_http import GitHttpServer
from tests.unit.actions.helpers import context_with_settings

TOKEN = "tok-hostile-0042"
Route = Callable[[BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes]]


class Recorder:
    """A tiny HTTP server: ``routes`` map a path to (status, headers, body); every request's
    path and Authorization header is recorded."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self.seen: list[tuple[str, str | None]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                recorder.seen.append((self.path, self.headers.get("Authorization")))
                route = routes.get(self.path.split("?")[0])
                status, headers, body = route(self) if route else (404, {}, b"")
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def tarball(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


SKELETON = tarball({"README.md": b"hello\n"})


def serve(body: bytes) -> Route:
    return lambda _h: (200, {"Content-Type": "application/gzip"}, body)


def redirect(to: Callable[[], str]) -> Route:
    return lambda _h: (302, {"Location": to()}, b"")


def ctx_for(tmp_path: Path, **settings: str) -> ActionContext:
    return context_with_settings(tmp_path, tmp_path / "cache", **settings)


@pytest.fixture
def two_hosts() -> Iterator[tuple[Recorder, Recorder]]:
    other = Recorder({"/loot.tgz": serve(SKELETON)})
    first = Recorder({"/skel.tgz": redirect(lambda: other.base + "/loot.tgz"),
                      "/plain.tgz": serve(SKELETON)})
    with first, other:
        yield first, other


def test_the_token_never_follows_a_redirect_to_another_host(
        tmp_path: Path, two_hosts: tuple[Recorder, Recorder]) -> None:
    first, other = two_hosts
    ctx = ctx_for(tmp_path, FETCH_ALLOW=f"{first.base}/ {other.base}/")
    FetchPlain().run(ctx, FetchPlainInput(url=f"{first.base}/skel.tgz", token=TOKEN))
    assert first.seen == [("/skel.tgz", f"Bearer {TOKEN}")]
    assert other.seen == [("/loot.tgz", None)]
    assert (ctx.workspace / "README.md").read_text() == "hello\n"


def test_a_redirect_outside_the_allowlist_is_refused_before_it_is_followed(
        tmp_path: Path, two_hosts: tuple[Recorder, Recorder]) -> None:
    first, other = two_hosts
    ctx = ctx_for(tmp_path, FETCH_ALLOW=f"{first.base}/")
    with pytest.raises(TemplateError, match="not allowed"):
        FetchPlain().run(ctx, FetchPlainInput(url=f"{first.base}/skel.tgz", token=TOKEN))
    assert other.seen == []


@pytest.mark.parametrize("spelling", [
    "{allowed}@{other}/plain.tgz",            # userinfo: the host is the part after '@'
    "{allowed}/ok/../plain.tgz",              # dot segments out of the allowed path
    "{allowed}/ok/%2e%2e/plain.tgz",          # encoded dot segments
    "{allowed}/ok%2f..%2fplain.tgz",          # encoded slashes
    "{allowed}/okay/plain.tgz",               # a prefix that is not a whole segment
])
def test_allowlist_spellings_reach_nothing(tmp_path: Path, two_hosts: tuple[Recorder, Recorder],
                                           spelling: str) -> None:
    first, other = two_hosts
    url = spelling.format(allowed=first.base, other=other.base.removeprefix("http://"))
    ctx = ctx_for(tmp_path, FETCH_ALLOW=f"{first.base}/ok")
    with pytest.raises(EnvforgeError) as info:
        FetchPlain().run(ctx, FetchPlainInput(url=url))
    assert "\n" not in str(info.value)
    assert first.seen == [] and other.seen == []


@pytest.mark.parametrize("host", ["localhost", "localhost.", "2130706433", "0x7f.0.0.1",
                                  "127.1"])
def test_names_and_spellings_of_loopback_are_refused(
        tmp_path: Path, two_hosts: tuple[Recorder, Recorder], host: str) -> None:
    first, _ = two_hosts
    port = first.base.rsplit(":", 1)[1]
    url = f"http://{host}:{port}/plain.tgz"
    # the operator allowlisted the name (not an address): it must not reach loopback
    with pytest.raises(EnvforgeError):
        FetchPlain().run(ctx_for(tmp_path, FETCH_ALLOW=url), FetchPlainInput(url=url))
    assert first.seen == []


@pytest.mark.parametrize("host", ["[::ffff:127.0.0.1]", "[::1]", "localhost", "2130706433"])
def test_another_spelling_of_an_allowlisted_address_is_not_that_address(
        tmp_path: Path, two_hosts: tuple[Recorder, Recorder], host: str) -> None:
    first, _ = two_hosts
    port = first.base.rsplit(":", 1)[1]
    ctx = ctx_for(tmp_path, FETCH_ALLOW=f"{first.base}/")
    with pytest.raises(EnvforgeError):
        FetchPlain().run(ctx, FetchPlainInput(url=f"http://{host}:{port}/plain.tgz"))
    assert first.seen == []


def test_a_private_archive_is_never_served_from_the_cache_to_a_run_without_its_token(
        tmp_path: Path) -> None:
    def private(handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        if handler.headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, {}, b""
        return 200, {}, tarball({"secret.txt": b"private rows\n"})

    with Recorder({"/private.tgz": private}) as server:
        url = f"{server.base}/private.tgz"
        owner = ctx_for(tmp_path / "a", FETCH_ALLOW=f"{server.base}/")
        FetchPlain().run(owner, FetchPlainInput(url=url, token=TOKEN))
        assert (owner.workspace / "secret.txt").exists()
        # same cache folder, no token: the server is asked again and says no
        stranger = ActionContext(run_id="r2", step_id="fetch", template_name="t",
                                 template_dir=owner.template_dir,
                                 workspace=tmp_path / "b", capabilities=owner.capabilities)
        stranger.workspace.mkdir()
        with pytest.raises(TemplateError, match="answered 401"):
            FetchPlain().run(stranger, FetchPlainInput(url=url))
        with pytest.raises(TemplateError, match="answered 401"):
            FetchPlain().run(stranger, FetchPlainInput(url=url, token="another-token"))
        assert not (stranger.workspace / "secret.txt").exists()
        assert len(server.seen) == 3


def test_a_slow_drip_stops_at_the_overall_deadline(tmp_path: Path) -> None:
    def drip(handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        try:
            for _ in range(60):
                handler.wfile.write(b"x")
                handler.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass
        raise ConnectionAbortedError  # the answer was sent by hand

    with Recorder({"/slow.tgz": drip}) as server:
        ctx = ctx_for(tmp_path, FETCH_ALLOW=f"{server.base}/", FETCH_TIMEOUT_S="1")
        started = time.monotonic()
        with pytest.raises(TemplateError, match="1 s budget"):
            FetchPlain().run(ctx, FetchPlainInput(url=f"{server.base}/slow.tgz"))
        assert time.monotonic() - started < 4


@pytest.mark.parametrize("members, why", [
    ({f"f{i}.txt": b"" for i in range(300)}, "ENVFORGE_FETCH_MAX_ENTRIES"),
    ({"/".join(["d"] * 60) + "/deep.txt": b"x"}, "folders deep"),
    ({"x" * 300 + ".txt": b"x"}, "over 255 bytes"),
    ({"ok/.git/config": b"[core]\\n", "ok/file": b"x"}, None),
    ({".GIT/hooks/post-checkout": b"#!/bin/sh\\n", "file": b"x"}, None),
])
def test_hostile_archives_are_refused_in_one_line_or_lose_their_git_folder(
        tmp_path: Path, members: dict[str, bytes], why: str | None) -> None:
    with Recorder({"/a.tgz": serve(tarball(members))}) as server:
        ctx = ctx_for(tmp_path, FETCH_ALLOW=f"{server.base}/", FETCH_MAX_ENTRIES="100")
        if why is None:
            FetchPlain().run(ctx, FetchPlainInput(url=f"{server.base}/a.tgz"))
            written = [p.relative_to(ctx.workspace).as_posix()
                       for p in ctx.workspace.rglob("*")]
            assert not any(".git" in w.lower() for w in written)
            return
        with pytest.raises(EnvforgeError, match=why) as info:
            FetchPlain().run(ctx, FetchPlainInput(url=f"{server.base}/a.tgz"))
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    assert "partial" not in message and str(tmp_path) not in message
    assert list(ctx.workspace.iterdir()) == []


def test_git_never_sends_the_token_across_a_redirect(tmp_path: Path) -> None:
    served = tmp_path / "served"
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "a.txt").write_text("a\n")
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "a"], check=True)
    served.mkdir()
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(served / "r.git")],
                   check=True)
    with GitHttpServer(served, "x-access-token", TOKEN, protect="all") as target:
        seen: list[str | None] = []

        def bounce(handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
            seen.append(handler.headers.get("Authorization"))
            return 301, {"Location": target.url("r.git") + handler.path.split("r.git", 1)[1]}, b""

        with Recorder({"/r.git/info/refs": bounce}) as front:
            ctx = ctx_for(tmp_path, FETCH_ALLOW=f"{front.base}/ {target.url('')}")
            with pytest.raises(TemplateError, match="git clone"):
                FetchPlain().run(ctx, FetchPlainInput(url=f"{front.base}/r.git", token=TOKEN))
    basic = "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert seen and seen[0] == basic  # the configured origin got it
    assert target.seen_urls == []     # the redirect target was never asked


def test_a_killed_download_leaves_nothing_in_the_cache(tmp_path: Path) -> None:
    """SIGKILL in the middle of a download: no cache entry, and the next fetch fetches."""
    import os
    import signal
    import sys

    started = threading.Event()
    release = threading.Event()
    body = SKELETON

    def stall(handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[: len(body) // 2])
        handler.wfile.flush()
        started.set()
        release.wait(30)
        raise ConnectionAbortedError

    with Recorder({"/a.tgz": stall, "/b.tgz": serve(body)}) as server:
        cache = tmp_path / "cache"
        script = (
            "from pathlib import Path\n"
            "from envforge.actions.fetch_sources import fetch_remote\n"
            "from envforge.capabilities import Capabilities\n"
            f"caps = Capabilities.from_environ({{'ENVFORGE_FETCH_ALLOW': {server.base!r}}}, "
            f"Path({str(cache)!r}))\n"
            f"fetch_remote({server.base + '/a.tgz'!r}, None, caps)\n")
        child = subprocess.Popen([sys.executable, "-c", script])
        try:
            assert started.wait(30)
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
        finally:
            release.set()
        entries = [p for p in cache.rglob("*") if p.parent.parent.name == "fetch"]
        assert [p for p in entries if not p.name.startswith(".partial-")] == []
        ctx = ctx_for(tmp_path, FETCH_ALLOW=f"{server.base}/")
        ctx = ActionContext(run_id="r", step_id="fetch", template_name="t",
                            template_dir=ctx.template_dir, workspace=ctx.workspace,
                            capabilities=Capabilities.from_environ(
                                {"ENVFORGE_FETCH_ALLOW": f"{server.base}/"}, cache))
        FetchPlain().run(ctx, FetchPlainInput(url=f"{server.base}/b.tgz"))
        assert (ctx.workspace / "README.md").read_text() == "hello\n"
        assert not list(cache.rglob(".partial-*"))  # the killed one's leftovers are swept


def test_an_archive_whose_top_folder_holds_its_own_name_unpacks(tmp_path: Path) -> None:
    archive = tarball({"repo/repo/inner.txt": b"i\n", "repo/top.txt": b"t\n"})
    with Recorder({"/a.tgz": serve(archive)}) as server:
        ctx = ctx_for(tmp_path, FETCH_ALLOW=f"{server.base}/")
        FetchPlain().run(ctx, FetchPlainInput(url=f"{server.base}/a.tgz"))
    assert (ctx.workspace / "repo/inner.txt").read_text() == "i\n"
    assert (ctx.workspace / "top.txt").read_text() == "t\n"
