"""The provider stand-in against the providers' own documentation, for the parts added for
publish:azure and github:webhook (the rest is checked in tests/integration/pr_status and
test_publishers): what each documented call answers, its status code, its error body, the
authentication it takes, and pagination. Written from the docs, not from envforge's code:
a stand-in kinder than the real API would let envforge's tests pass where production fails.

Sources: Azure DevOps REST API 7.1, Git > Repositories (Create: 201 GitRepository; List:
``{count, value}``; Delete: 204), its error body (``$id, innerException, message, typeName,
typeKey, errorCode, eventId``), PAT authentication (Basic, any user name) and
``X-TFS-FedAuthRedirect: Suppress`` (401 instead of a 203 sign-in page); GitHub REST API
2022-11-28, Repositories > Webhooks (Create 201, List with Link pagination, Delete 204,
422 Validation Failed with ``errors``, 404 for a repository the token cannot administer).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.git_http import GitHttpServer
from tests.standins.git_provider import ProviderStandIn

TOKEN = "conformance-token-0042"
AZURE = "/azure/acme/Shop%20Team/_apis/git/repositories"
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[ProviderStandIn]:
    with GitHttpServer(tmp_path, "envforge", TOKEN) as git, \
            ProviderStandIn(tmp_path, git, TOKEN) as provider:
        yield provider


def _azure(stand_in: ProviderStandIn, token: str = TOKEN) -> httpx.Client:
    basic = base64.b64encode(f"anyone:{token}".encode()).decode()
    return httpx.Client(base_url=stand_in.base, headers={
        "Authorization": f"Basic {basic}", "X-TFS-FedAuthRedirect": "Suppress"})


def _github(stand_in: ProviderStandIn) -> httpx.Client:
    return httpx.Client(base_url=stand_in.base + "/github", headers={
        "Authorization": f"Bearer {TOKEN}", "Accept": "application/vnd.github+json"})


# --- Azure DevOps ----------------------------------------------------------------------------

def test_azure_create_answers_201_and_a_git_repository(stand_in: ProviderStandIn) -> None:
    with _azure(stand_in) as client:
        answer = client.post(AZURE, params={"api-version": "7.1"}, json={"name": "web"})
    assert answer.status_code == 201
    repository = answer.json()
    assert GUID.fullmatch(repository["id"]) and repository["name"] == "web"
    assert repository["project"]["name"] == "Shop Team"
    assert repository["project"]["state"] == "wellFormed"
    assert repository["size"] == 0 and repository["isDisabled"] is False
    assert "defaultBranch" not in repository  # none until the first push
    # the remote URL names the organization as a user; the web URL does not
    assert re.fullmatch(r"http://acme@127\.0\.0\.1:\d+/acme/Shop%20Team/_git/web",
                        repository["remoteUrl"])
    assert "@" not in repository["webUrl"].split("://", 1)[1]
    assert repository["sshUrl"] == "git@ssh.dev.azure.com:v3/acme/Shop Team/web"
    assert repository["url"].endswith(f"/_apis/git/repositories/{repository['id']}")


def test_azure_list_and_delete(stand_in: ProviderStandIn) -> None:
    with _azure(stand_in) as client:
        created = client.post(AZURE, params={"api-version": "7.1"}, json={"name": "web"}).json()
        listed = client.get(AZURE, params={"api-version": "7.1"})
        assert listed.status_code == 200
        assert listed.json()["count"] == 1
        assert [r["id"] for r in listed.json()["value"]] == [created["id"]]
        deleted = client.delete(f"{AZURE}/{created['id']}", params={"api-version": "7.1"})
        assert (deleted.status_code, deleted.content) == (204, b"")
        again = client.delete(f"{AZURE}/{created['id']}", params={"api-version": "7.1"})
    assert again.status_code == 404
    assert again.json()["typeKey"] == "GitRepositoryNotFoundException"
    assert again.json()["message"].startswith("TF401019")


@pytest.mark.parametrize(("path", "params", "body", "status", "type_key", "code"), [
    (AZURE, {}, {"name": "web"}, 400, "VssVersionNotSpecifiedException", "VS800075"),
    ("/azure/acme/Nope/_apis/git/repositories", {"api-version": "7.1"}, {"name": "web"}, 404,
     "ProjectDoesNotExistWithNameException", "TF200016"),
    (AZURE, {"api-version": "7.1"}, {"name": "_web"}, 400, "InvalidArgumentValueException",
     "TF401025"),
    (AZURE, {"api-version": "7.1"}, {"name": "a/b"}, 400, "InvalidArgumentValueException",
     "TF401025"),
    (AZURE, {"api-version": "7.1"}, {"name": "x" * 65}, 400, "InvalidArgumentValueException",
     "TF401025"),
])
def test_azure_errors_carry_azure_devops_error_body(
        stand_in: ProviderStandIn, path: str, params: dict[str, str], body: dict[str, str],
        status: int, type_key: str, code: str) -> None:
    with _azure(stand_in) as client:
        answer = client.post(path, params=params, json=body)
    assert answer.status_code == status
    error = answer.json()
    assert set(error) == {"$id", "innerException", "message", "typeName", "typeKey",
                          "errorCode", "eventId"}
    assert error["typeKey"] == type_key and error["message"].startswith(code)


def test_azure_a_taken_name_is_409(stand_in: ProviderStandIn) -> None:
    with _azure(stand_in) as client:
        client.post(AZURE, params={"api-version": "7.1"}, json={"name": "web"})
        answer = client.post(AZURE, params={"api-version": "7.1"}, json={"name": "WEB"})
    assert answer.status_code == 409
    assert answer.json()["typeKey"] == "GitRepositoryNameAlreadyExistsException"


def test_azure_a_refused_token_is_401_only_when_redirects_are_suppressed(
        stand_in: ProviderStandIn) -> None:
    with _azure(stand_in, "wrong") as client:
        assert client.get(AZURE, params={"api-version": "7.1"}).status_code == 401
    with httpx.Client(base_url=stand_in.base) as browser:
        page = browser.get(AZURE, params={"api-version": "7.1"})
    assert page.status_code == 203 and page.headers["content-type"].startswith("text/html")


def test_azure_pushes_need_the_pat_with_any_user_name(stand_in: ProviderStandIn,
                                                      tmp_path: Path) -> None:
    import subprocess

    with _azure(stand_in) as client:
        remote = client.post(AZURE, params={"api-version": "7.1"},
                             json={"name": "web"}).json()["remoteUrl"]
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run(["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@x",
                    "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    url = remote.replace("acme@", "")
    refused = subprocess.run(["git", "-C", str(work), "push", "-q", url, "HEAD:main"],
                             capture_output=True, text=True, env={"GIT_TERMINAL_PROMPT": "0"})
    assert refused.returncode != 0
    header = "Authorization: Basic " + base64.b64encode(f"envforge:{TOKEN}".encode()).decode()
    pushed = subprocess.run(["git", "-C", str(work), "-c", f"http.extraHeader={header}",
                             "push", "-q", url, "HEAD:main"], capture_output=True, text=True)
    assert pushed.returncode == 0, pushed.stderr


# --- GitHub repository webhooks ----------------------------------------------------------------

HOOK = {"name": "web", "active": True, "events": ["push", "pull_request"],
        "config": {"url": "https://ci.example.com/h", "content_type": "json",
                   "insecure_ssl": "0", "secret": "s3cret"}}


def test_github_create_hook_answers_201_and_never_the_secret(stand_in: ProviderStandIn) -> None:
    stand_in.make_repo("acme", "shop")
    with _github(stand_in) as client:
        answer = client.post("/repos/acme/shop/hooks", json=HOOK)
    assert answer.status_code == 201
    hook = answer.json()
    assert hook["type"] == "Repository" and hook["name"] == "web"
    assert isinstance(hook["id"], int) and hook["active"] is True
    assert hook["events"] == ["push", "pull_request"]
    assert hook["config"] == {"content_type": "json", "insecure_ssl": "0",
                              "url": "https://ci.example.com/h", "secret": "********"}
    for link in ("url", "test_url", "ping_url", "deliveries_url"):
        assert hook[link].startswith(stand_in.base + "/github/repos/acme/shop/hooks/")
    assert hook["last_response"] == {"code": None, "status": "unused", "message": None}
    assert "s3cret" not in answer.text


def test_github_hook_defaults(stand_in: ProviderStandIn) -> None:
    stand_in.make_repo("acme", "shop")
    with _github(stand_in) as client:
        hook = client.post("/repos/acme/shop/hooks",
                           json={"config": {"url": "https://ci.example.com/h"}}).json()
    assert hook["events"] == ["push"] and hook["active"] is True
    assert hook["config"] == {"content_type": "form", "insecure_ssl": "0",
                              "url": "https://ci.example.com/h"}


@pytest.mark.parametrize(("body", "message"), [
    ({"config": {}}, "Config must have a url"),
    ({"config": {"url": "http://localhost:8080/h"}}, "reachable over the public Internet"),
    ({"config": {"url": "http://10.1.2.3/h"}}, "reachable over the public Internet"),
    ({"config": {"url": "ftp://ci.example.com/h"}}, "not a valid URL"),
    ({"config": {"url": "https://ci.example.com/h", "content_type": "xml"}},
     "Content type"),
    ({"config": {"url": "https://ci.example.com/h"}, "events": ["pushes"]}, "Invalid event"),
    ({"name": "email", "config": {"url": "https://ci.example.com/h"}}, "Name must be"),
])
def test_github_hook_validation_failures_are_422(stand_in: ProviderStandIn,
                                                 body: dict[str, object], message: str) -> None:
    stand_in.make_repo("acme", "shop")
    with _github(stand_in) as client:
        answer = client.post("/repos/acme/shop/hooks", json=body)
    assert answer.status_code == 422
    error = answer.json()
    assert error["message"] == "Validation Failed" and "documentation_url" in error
    [item] = error["errors"]
    assert item["resource"] == "Hook" and message in item["message"]


def test_github_duplicate_hook_and_unknown_repository(stand_in: ProviderStandIn) -> None:
    stand_in.make_repo("acme", "shop")
    with _github(stand_in) as client:
        assert client.post("/repos/acme/shop/hooks", json=HOOK).status_code == 201
        again = client.post("/repos/acme/shop/hooks", json=HOOK)
        missing = client.post("/repos/acme/nope/hooks", json=HOOK)
    assert again.status_code == 422
    assert again.json()["errors"][0]["message"] == "Hook already exists on this repository"
    assert missing.status_code == 404 and missing.json()["message"] == "Not Found"


def test_github_hooks_are_paginated_with_link_headers(stand_in: ProviderStandIn) -> None:
    stand_in.make_repo("acme", "shop")
    with _github(stand_in) as client:
        for n in range(3):
            client.post("/repos/acme/shop/hooks",
                        json={"config": {"url": f"https://ci.example.com/{n}"}})
        first = client.get("/repos/acme/shop/hooks", params={"per_page": 2})
        links = dict((rel, url) for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"',
                                                           first.headers["link"]))
        second = client.get(links["next"])
    assert [h["config"]["url"][-1] for h in first.json()] == ["0", "1"]
    assert links["last"].endswith("page=2")
    assert [h["config"]["url"][-1] for h in second.json()] == ["2"]
    assert "link" not in second.headers


def test_github_delete_hook_is_204_then_404(stand_in: ProviderStandIn) -> None:
    stand_in.make_repo("acme", "shop")
    with _github(stand_in) as client:
        hook = client.post("/repos/acme/shop/hooks", json=HOOK).json()
        deleted = client.delete(f"/repos/acme/shop/hooks/{hook['id']}")
        again = client.delete(f"/repos/acme/shop/hooks/{hook['id']}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert again.status_code == 404


def test_github_a_wrong_token_is_401_bad_credentials(stand_in: ProviderStandIn) -> None:
    stand_in.make_repo("acme", "shop")
    with httpx.Client(base_url=stand_in.base + "/github",
                      headers={"Authorization": "Bearer nope"}) as client:
        answer = client.post("/repos/acme/shop/hooks", json=HOOK)
    assert answer.status_code == 401 and answer.json()["message"] == "Bad credentials"
