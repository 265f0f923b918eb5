"""The publishing side of the provider stand-in: the GitHub, GitLab, Azure DevOps and
Backstage catalog REST endpoints envforge's actions call, with the providers' documented
response shapes, status codes and error bodies, on 127.0.0.1. Creating a repository makes a
bare Git repository that a GitHttpServer serves, so pushes are real. GitHub's repository
webhooks are :mod:`.hooks`, Azure DevOps' repositories :mod:`.azure`.

Authentication as each provider takes it: GitHub (and this Backstage) ``Authorization: Bearer``,
GitLab ``PRIVATE-TOKEN``, Azure DevOps a personal access token as HTTP Basic. ``trap``, when
set, answers a request itself (a test's misbehaving provider: slow, huge, redirecting)."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.git_http import GitHttpServer
from tests.standins.git_provider.azure import SIGN_IN_PAGE, AzureDevOps, basic_token
from tests.standins.git_provider.hooks import RepositoryHooks

#: answers a request itself when it returns True (given the handler, method and raw path)
Trap = Callable[[BaseHTTPRequestHandler, str, str], bool]


class ProviderStandIn:
    def __init__(self, git_root: Path, git: GitHttpServer, token: str,
                 organizations: tuple[str, ...] = ("acme",), login: str = "jane") -> None:
        #: the user the token belongs to: ``POST /user/repos`` creates under this login
        self.login = login
        self.git_root = git_root
        self.git = git
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        #: every request's headers, in order (what a token-leak test reads)
        self.headers: list[dict[str, str]] = []
        self.projects: dict[int, str] = {}
        #: GitHub's numeric id of each repository ("owner/name"), as its API answers it
        self.repo_ids: dict[str, int] = {}
        self.next_id = itertools.count(1000)
        self.trap: Trap | None = None
        self.azure = AzureDevOps(git_root, git.url("").rstrip("/"))
        self.hooks = RepositoryHooks(
            lambda owner, repo: (git_root / owner / f"{repo}.git").exists(), "")
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _reply(self, status: int, body: Any = None,
                       headers: dict[str, str] | None = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                path = urllib.parse.unquote(self.path)
                stand_in.calls.append((self.command, path, body))
                stand_in.headers.append(dict(self.headers.items()))
                if stand_in.trap is not None and stand_in.trap(self, self.command, self.path):
                    return
                if path.startswith("/azure/"):
                    self._azure(body)
                    return
                github = path.startswith(("/github", "/backstage"))
                expected = (f"Bearer {token}" if github else token)
                got = self.headers.get("Authorization" if github else "PRIVATE-TOKEN")
                if got != expected:
                    self._reply(401, {"message": "Bad credentials",
                                      "documentation_url": "https://docs.github.com/rest"}
                                if github else {"message": "401 Unauthorized"})
                    return
                hooks = stand_in.hooks.handle(self.command, path, body)
                if hooks is not None:
                    self._reply(*hooks)
                    return
                status, answer = stand_in.route(self.command, path, body)
                self._reply(status, answer)

            def _azure(self, body: Any) -> None:
                if basic_token(self.headers.get("Authorization")) != token:
                    if self.headers.get("X-TFS-FedAuthRedirect") == "Suppress":
                        self._reply(401, None, {"WWW-Authenticate": "Basic realm=\"\""})
                        return
                    self.send_response(203)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(SIGN_IN_PAGE)))
                    self.end_headers()
                    self.wfile.write(SIGN_IN_PAGE)
                    return
                answer = stand_in.azure.handle(self.command, self.path, body)
                self._reply(*(answer or (404, {"message": f"no route {self.path}"})))

            do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.organizations = organizations
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.hooks.base = self.base

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def make_repo(self, owner: str, repo: str, branch: str = "master",
                  files: dict[str, str] | None = None) -> Path:
        bare = self.git_root / owner / f"{repo}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "--bare", "-b", branch, str(bare)], check=True)
        if files:
            work = self.git_root / f"{owner}-{repo}-seed"
            subprocess.run(["git", "init", "-q", "-b", branch, str(work)], check=True)
            for rel, text in files.items():
                (work / rel).parent.mkdir(parents=True, exist_ok=True)
                (work / rel).write_text(text)
            git = ["git", "-C", str(work), "-c", "user.name=s", "-c", "user.email=s@x"]
            subprocess.run([*git, "add", "."], check=True)
            subprocess.run([*git, "commit", "-qm", "seed"], check=True)
            subprocess.run([*git, "push", "-q", str(bare), f"HEAD:{branch}"], check=True)
        return bare

    def route(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        if path == "/backstage/api/catalog/locations" and method == "POST":
            name = body["target"].split("/")[4]  # https://host/owner/<repo>/...
            return 201, {"location": {"type": "url", "target": body["target"]},
                         "entities": [{"kind": "Component",
                                       "metadata": {"name": name, "namespace": "default"}}]}
        if m := re.fullmatch(r"/github/users/([^/]+)", path):
            kind = "Organization" if m[1] in self.organizations else "User"
            return 200, {"login": m[1], "type": kind}
        if (m := re.fullmatch(r"/github/orgs/([^/]+)/repos", path)) and method == "POST":
            return self._github_create(m[1], body)
        if path == "/github/user" and method == "GET":
            return 200, {"login": self.login, "type": "User"}
        if path == "/github/user/repos" and method == "POST":
            return self._github_create(self.login, body)
        if m := re.fullmatch(r"/github/repos/([^/]+)/([^/]+)", path):
            if not (self.git_root / m[1] / f"{m[2]}.git").exists():
                return 404, {"message": "Not Found"}
            if method == "DELETE":
                shutil_rmtree(self.git_root / m[1] / f"{m[2]}.git")
                self.repo_ids.pop(f"{m[1]}/{m[2]}", None)
                return 204, None
            return 200, {"clone_url": self.git.url(f"{m[1]}/{m[2]}.git"),
                         "id": self.repo_ids.setdefault(f"{m[1]}/{m[2]}", next(self.next_id)),
                         "default_branch": "main", "full_name": f"{m[1]}/{m[2]}"}
        if m := re.fullmatch(r"/github/repos/([^/]+)/([^/]+)/pulls", path):
            return 201, {"number": 7, "html_url": f"https://github.test/{m[1]}/{m[2]}/pull/7",
                         "head": {"ref": body["head"]}, "base": {"ref": body["base"]}}
        if m := re.fullmatch(r"/gitlab/namespaces/(.+)", path):
            return 200, {"id": 11, "full_path": m[1], "kind": "group"}
        if path == "/gitlab/projects" and method == "POST":
            owner = "acme"
            self.make_repo(owner, body["path"])
            self.projects[42] = f"{owner}/{body['path']}"
            return 201, {"id": 42, "path_with_namespace": f"{owner}/{body['path']}",
                         "http_url_to_repo": self.git.url(f"{owner}/{body['path']}.git"),
                         "web_url": f"https://gitlab.test/{owner}/{body['path']}"}
        if (m := re.fullmatch(r"/gitlab/projects/(\d+)", path)) and method == "DELETE":
            owner_repo = self.projects.pop(int(m[1]))
            shutil_rmtree(self.git_root / f"{owner_repo}.git")
            return 202, {"message": "202 Accepted"}
        if m := re.fullmatch(r"/gitlab/projects/([^/]+/[^/]+)/merge_requests", path):
            return 201, {"iid": 3, "project_id": 42,
                         "web_url": f"https://gitlab.test/{m[1]}/-/merge_requests/3"}
        if m := re.fullmatch(r"/gitlab/projects/([^/]+)/([^/]+)", path):
            return 200, {"id": 42, "default_branch": "main",
                         "http_url_to_repo": self.git.url(f"{m[1]}/{m[2]}.git")}
        return 404, {"message": f"no stand-in for {method} {path}"}

    def _github_create(self, owner: str, body: dict[str, Any]) -> tuple[int, Any]:
        # as GitHub: a name is letters, digits, '.', '_' and '-'; anything else is refused
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", str(body.get("name", ""))) \
                or body["name"] in (".", ".."):
            return 422, {"message": "Repository creation failed.",
                         "errors": [{"field": "name", "code": "invalid"}]}
        if (self.git_root / owner / f"{body['name']}.git").exists():
            return 422, {"message": "Repository creation failed.",
                         "errors": [{"field": "name", "message": "name already exists"}]}
        self.make_repo(owner, body["name"])
        ident = self.repo_ids[f"{owner}/{body['name']}"] = next(self.next_id)
        return 201, {"id": ident, "name": body["name"], "full_name": f"{owner}/{body['name']}",
                     "private": body.get("private", True),
                     "clone_url": self.git.url(f"{owner}/{body['name']}.git"),
                     "html_url": f"https://github.test/{owner}/{body['name']}"}

    def __enter__(self) -> ProviderStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def shutil_rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
