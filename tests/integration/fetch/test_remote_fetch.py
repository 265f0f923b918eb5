"""Remote fetch:* sources against real local servers on 127.0.0.1: an HTTP server serving
archives and a Git smart-HTTP server (git http-backend) asking for a token."""

from __future__ import annotations

import io
import subprocess
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from envforge.actions.base import ActionContext
from envforge.actions.fetch import FetchPlain, FetchPlainInput, FetchTemplate, FetchTemplateInput
from envforge.errors import PathEscapeError, TemplateError
from tests.git_http import GitHttpServer
from tests.unit.actions.helpers import context_with_settings

TOKEN = "tok-fetch-4711"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The envforge home of this test's capabilities (their cache is its cache/): handed to
    them in ``_ctx``, not set in the process environment."""
    return tmp_path / "home"


@pytest.fixture
def archives(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    root = tmp_path / "www"
    root.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("repo-main/skeleton/README.md", b"# ${{ values.name }}\n"),
                           ("repo-main/skeleton/bin/run.sh", b"echo hi\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    (root / "skel.tar.gz").write_bytes(buf.getvalue())
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../evil.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    (root / "evil.tar.gz").write_bytes(evil.getvalue())
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("a/b.txt", "zip ${{ values.name }}")
        z.writestr("c.txt", "c")
    (root / "skel.zip").write_bytes(zbuf.getvalue())
    (root / "big.tar.gz").write_bytes(b"\0" * 4096)
    seen: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            seen.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path, seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _ctx(tmp_path: Path, **settings: str) -> ActionContext:
    """A step context whose capabilities come from ``settings`` (ENVFORGE_* names without
    the prefix), as the composition root builds them."""
    return context_with_settings(tmp_path, tmp_path / "home" / "cache", **settings)


def test_archives_are_fetched_only_when_allowlisted_and_cached(
        archives: tuple[str, Path, list[str]], home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    base, tmp_path, seen = archives
    ctx = _ctx(tmp_path)
    url = f"{base}/skel.tar.gz//skeleton"
    with pytest.raises(TemplateError, match="ENVFORGE_FETCH_ALLOW"):
        FetchTemplate().run(ctx, FetchTemplateInput(url=url, values={"name": "x"}))
    assert seen == []  # nothing was requested before the allowlist check
    ctx = _ctx(tmp_path, FETCH_ALLOW=f"{base}/")
    out = FetchTemplate().run(ctx, FetchTemplateInput(url=url, values={"name": "shop"}))
    assert sorted(out.files) == ["README.md", "bin/run.sh"]
    assert (ctx.workspace / "README.md").read_text() == "# shop\n"
    FetchPlain().run(ctx, FetchPlainInput(url=f"{base}/skel.zip", targetPath="z"))
    assert (ctx.workspace / "z/a/b.txt").read_text() == "zip ${{ values.name }}"
    FetchTemplate().run(ctx, FetchTemplateInput(url=url, targetPath="again"))
    assert seen.count("/skel.tar.gz") == 1  # the second fetch came from the cache


def test_archive_limits(archives: tuple[str, Path, list[str]], home: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    base, tmp_path, _ = archives
    ctx = _ctx(tmp_path, FETCH_ALLOW=f"{base}/")
    with pytest.raises(PathEscapeError, match="outside the archive"):
        FetchPlain().run(ctx, FetchPlainInput(url=f"{base}/evil.tar.gz"))
    assert not (tmp_path / "evil.txt").exists()
    ctx = _ctx(tmp_path, FETCH_ALLOW=f"{base}/", FETCH_MAX_BYTES="1000")
    with pytest.raises(TemplateError, match="ENVFORGE_FETCH_MAX_BYTES"):
        FetchPlain().run(ctx, FetchPlainInput(url=f"{base}/big.tar.gz"))
    with pytest.raises(TemplateError, match="answered 404"):
        FetchPlain().run(ctx, FetchPlainInput(url=f"{base}/missing.tar.gz"))


def test_git_repositories_with_a_token(tmp_path: Path, home: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    served = tmp_path / "served"
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "skeleton").mkdir()
    (work / "skeleton/app.txt").write_text("app=${{ values.name }}\n")
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "skeleton"], check=True)
    served.mkdir()
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(served / "skel.git")],
                   check=True)
    with GitHttpServer(served, "x-access-token", TOKEN, protect="all") as server:
        url = server.url("skel.git") + "//skeleton#main"
        ctx = _ctx(tmp_path, FETCH_ALLOW=server.url(""))
        with pytest.raises(TemplateError, match="git clone failed") as info:
            FetchTemplate().run(ctx, FetchTemplateInput(url=url, token="wrong-token"))
        assert "wrong-token" not in str(info.value)
        out = FetchTemplate().run(ctx, FetchTemplateInput(url=url, token=TOKEN,
                                                          values={"name": "git"}))
    assert out.files == ["app.txt"]
    assert (ctx.workspace / "app.txt").read_text() == "app=git\n"
    # entries live per credential identity: fetch/<identity>/<entry>; the failed fetch with
    # the wrong token left no entry
    cached = [e for ident in (home / "cache" / "fetch").iterdir() for e in ident.iterdir()]
    assert len(cached) == 1 and not (cached[0] / "tree" / ".git").exists()
    assert TOKEN not in "".join(p.read_text(errors="ignore") for p in cached[0].rglob("*")
                                if p.is_file())
