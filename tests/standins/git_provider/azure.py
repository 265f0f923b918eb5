"""Azure DevOps Git repositories, as its REST API 7.1 documents them (Git > Repositories:
Create, List, Delete), for the publishing stand-in; routes under ``/azure``.

- ``POST /{organization}/{project}/_apis/git/repositories?api-version=7.1`` with
  ``{"name": ...}``: 201 and a GitRepository ``{id, name, url, project{id, name, state,
  visibility}, size, remoteUrl, sshUrl, webUrl, isDisabled, isInMaintenance}``; the
  ``remoteUrl`` carries the organization as a user name (``https://org@host/org/project/_git/
  repo``), as Azure DevOps answers it; no ``defaultBranch`` until the first push.
- ``GET`` the same path: 200 ``{"count": n, "value": [GitRepository]}``.
- ``DELETE .../_apis/git/repositories/{repositoryId}?api-version=7.1``: 204, no body.
- Errors carry Azure DevOps' body ``{$id, innerException, message, typeName, typeKey,
  errorCode, eventId}``: no ``api-version`` 400 (VssVersionNotSpecifiedException); an unknown
  project 404 (TF200016, ProjectDoesNotExistWithNameException); a name taken 409 (TF400948,
  GitRepositoryNameAlreadyExistsException); a name Azure refuses (longer than 64, a reserved
  character, a leading ``_`` or ``.``, a trailing ``.``) 400 (TF401025,
  InvalidArgumentValueException); an unknown repository id 404 (TF401019,
  GitRepositoryNotFoundException).
- Authentication is a personal access token as HTTP Basic with any user name. A request
  without a valid one gets 401 when it says ``X-TFS-FedAuthRedirect: Suppress``, and
  otherwise a 203 with an HTML sign-in page (what Azure DevOps answers a browser).
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

REPOSITORIES = re.compile(r"^/azure/([^/]+)/([^/]+)/_apis/git/repositories$")
REPOSITORY = re.compile(r"^/azure/([^/]+)/([^/]+)/_apis/git/repositories/([^/]+)$")
_RESERVED = set('/:\\~&%;@\'"?<>|#$*}{,+=[]')
SIGN_IN_PAGE = b"<html><head><title>Azure DevOps Services | Sign In</title></head></html>"


def azure_error(status: int, code: str, message: str, type_key: str) -> tuple[int, Any]:
    """Azure DevOps' error body (its ``message`` starts with the TF code)."""
    return status, {"$id": "1", "innerException": None, "message": f"{code}: {message}",
                    "typeName": f"Microsoft.TeamFoundation.{type_key}, "
                                "Microsoft.TeamFoundation.Server.Core",
                    "typeKey": type_key, "errorCode": 0, "eventId": 3000}


def basic_token(header: str | None) -> str | None:
    """The password of an HTTP Basic header (the PAT; the user name is ignored)."""
    if not header or not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode()
    except ValueError:
        return None
    return decoded.partition(":")[2]


@dataclass
class AzureDevOps:
    """Organizations and projects that exist, and the repositories created in them."""

    git_root: Path
    git_url: str  # the Git server's base (http://127.0.0.1:PORT)
    projects: dict[str, set[str]] = field(default_factory=lambda: {"acme": {"Shop Team"}})
    repositories: dict[str, dict[str, Any]] = field(default_factory=dict)

    def handle(self, method: str, raw_path: str, body: Any) -> tuple[int, Any] | None:
        """The answer of an Azure DevOps route, or None when the path is not one."""
        split = urlsplit(raw_path)
        path = split.path
        match = REPOSITORIES.match(path) or REPOSITORY.match(path)
        if not match:
            return None
        if not parse_qs(split.query).get("api-version"):
            return azure_error(400, "VS800075", f'No api-version was supplied for the "{method}" '
                               "request. The version must be supplied either as part of the "
                               "Accept header or as a query parameter.",
                               "VssVersionNotSpecifiedException")
        organization, project = unquote(match[1]), unquote(match[2])
        if project not in self.projects.get(organization, set()):
            return azure_error(404, "TF200016", f"The following project does not exist: "
                               f"{project}. Verify that the name of the project is correct "
                               "and that the project exists on the specified Azure DevOps "
                               "Server.", "ProjectDoesNotExistWithNameException")
        mine = [r for r in self.repositories.values()
                if (r["_organization"], r["project"]["name"]) == (organization, project)]
        if match.re is REPOSITORIES:
            if method == "GET":
                return 200, {"count": len(mine), "value": [_public(r) for r in mine]}
            if method == "POST":
                return self._create(organization, project, mine, body or {})
            return azure_error(405, "VS402371", "The requested resource does not support "
                               "http method 'DELETE'.", "HttpMethodNotAllowedException")
        repository_id = unquote(match[3])
        target = next((r for r in mine if r["id"] == repository_id
                       or r["name"].lower() == repository_id.lower()), None)
        if target is None:
            return azure_error(404, "TF401019", f"The Git repository with name or identifier "
                               f"{repository_id} does not exist or you do not have permissions "
                               "for the operation you are attempting.",
                               "GitRepositoryNotFoundException")
        if method == "DELETE":
            del self.repositories[target["id"]]
            shutil.rmtree(self._bare(organization, project, target["name"]),
                          ignore_errors=True)
            return 204, None
        return 200, _public(target)

    def _create(self, organization: str, project: str, mine: list[dict[str, Any]],
                body: dict[str, Any]) -> tuple[int, Any]:
        name = str(body.get("name") or "")
        if not name or len(name) > 64 or any(c in _RESERVED or ord(c) < 32 for c in name) \
                or name.startswith(("_", ".")) or name.endswith("."):
            return azure_error(400, "TF401025", f"'{name}' is not a valid name for a Git "
                               "repository.", "InvalidArgumentValueException")
        if any(r["name"].lower() == name.lower() for r in mine):
            return azure_error(409, "TF400948", f"A Git repository with the name {name} "
                               "already exists.", "GitRepositoryNameAlreadyExistsException")
        bare = self._bare(organization, project, name)
        bare.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
        repository_id = str(uuid.uuid4())
        project_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{organization}/{project}"))
        host = self.git_url.split("://", 1)[1]
        scheme = self.git_url.split("://", 1)[0]
        path = f"{organization}/{quote(project, safe='')}/_git/{quote(name, safe='')}"
        web = f"{self.git_url}/{path}"
        repository = {
            "id": repository_id, "name": name,
            "url": f"{self.git_url}/{organization}/{project_id}/_apis/git/repositories/"
                   f"{repository_id}",
            "project": {"id": project_id, "name": project, "state": "wellFormed",
                        "revision": 11, "visibility": "private"},
            "size": 0,
            "remoteUrl": f"{scheme}://{organization}@{host}/{path}",
            "sshUrl": f"git@ssh.dev.azure.com:v3/{organization}/{project}/{name}",
            "webUrl": web, "isDisabled": False, "isInMaintenance": False,
            "_organization": organization}
        self.repositories[repository_id] = repository
        return 201, _public(repository)

    def _bare(self, organization: str, project: str, name: str) -> Path:
        # the Git server looks the raw (percent-encoded) request path up on disk
        return self.git_root / organization / quote(project, safe="") / "_git" / quote(
            name, safe="")


def _public(repository: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in repository.items() if not k.startswith("_")}
