"""Dockerfile choice and stack templates, on directories (no services)."""

from __future__ import annotations

from pathlib import Path

import pytest

from envforge.errors import DockerfileError, PathEscapeError, UnknownStackError
from envforge.images.dockerfile import (
    DirectoryView,
    detect_stack,
    load_stacks,
    plan_dockerfile,
    render_stack,
)


def _source(root: Path, files: dict[str, str]) -> DirectoryView:
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    return DirectoryView(root)


def _instructions(dockerfile: str) -> list[str]:
    return [ln.split()[0] for ln in dockerfile.splitlines() if ln and not ln.startswith("#")
            and not ln.startswith((" ", "\t"))]


def test_the_four_stacks_exist() -> None:
    assert {"python", "node", "java-maven", "static"} <= set(load_stacks())


@pytest.mark.parametrize(("files", "stack"), [
    ({"pom.xml": "<project/>", "package.json": "{}"}, "java-maven"),  # priority decides
    ({"package.json": "{}"}, "node"),
    ({"requirements.txt": "flask\n"}, "python"),
    ({"pyproject.toml": "[project]\n"}, "python"),
    ({"public/index.html": "x"}, "static"),
    ({"main.go": "package main"}, None),
])
def test_detect_stack(tmp_path: Path, files: dict[str, str], stack: str | None) -> None:
    assert detect_stack(_source(tmp_path, files)) == stack


def test_python_stack_follows_the_files(tmp_path: Path) -> None:
    both = render_stack("python", _source(tmp_path / "a", {"requirements.txt": "x",
                                                           "pyproject.toml": "y"}))
    assert "pip install --no-cache-dir -r requirements.txt" in both
    assert "RUN pip install --no-cache-dir .\n" in both
    only_req = render_stack("python", _source(tmp_path / "b", {"requirements.txt": "x"}),
                            variables={"command": ["gunicorn", "app:app"], "port": 9000})
    assert "RUN pip install --no-cache-dir .\n" not in only_req
    assert 'CMD ["gunicorn", "app:app"]' in only_req and "EXPOSE 9000" in only_req
    assert _instructions(only_req)[0] == "FROM"


def test_node_stack_uses_npm_ci_with_a_lock_file(tmp_path: Path) -> None:
    locked = render_stack("node", _source(tmp_path / "a", {"package.json": "{}",
                                                           "package-lock.json": "{}"}))
    assert "RUN npm ci --omit=dev" in locked and "COPY package.json package-lock.json ./" in locked
    loose = render_stack("node", _source(tmp_path / "b", {"package.json": "{}"}),
                         variables={"build_script": True})
    assert "RUN npm install --omit=dev" in loose and "RUN npm run build" in loose


def test_java_stack_is_two_stages(tmp_path: Path) -> None:
    out = render_stack("java-maven", _source(tmp_path, {"pom.xml": "<project/>"}),
                       variables={"base_image": "registry.local/jre:21"})
    assert _instructions(out).count("FROM") == 2
    assert "FROM registry.local/jre:21" in out and "COPY --from=build" in out


def test_static_stack_serves_the_site_directory(tmp_path: Path) -> None:
    out = render_stack("static", _source(tmp_path, {"public/index.html": "x"}),
                       variables={"base_image": "localhost/busybox:1", "port": 8081})
    assert "FROM localhost/busybox:1" in out and "COPY public /www" in out
    assert '"-p", "8081"' in out


def test_repository_dockerfile_wins_and_path_is_configurable(tmp_path: Path) -> None:
    view = _source(tmp_path, {"Containerfile": "FROM a\n", "ops/Dockerfile.prod": "FROM b\n",
                              "index.html": "x"})
    own = plan_dockerfile(view)
    assert (own.origin, own.path, own.content) == ("repository", "Containerfile", "FROM a\n")
    chosen = plan_dockerfile(view, dockerfile="ops/Dockerfile.prod")
    assert chosen.content == "FROM b\n" and "ops/Dockerfile.prod" in chosen.describe()
    with pytest.raises(DockerfileError, match="no Dockerfile at 'ops/missing'"):
        plan_dockerfile(view, dockerfile="ops/missing")
    with pytest.raises(PathEscapeError):
        plan_dockerfile(view, dockerfile="../etc/passwd")


def test_generated_when_no_dockerfile_in_the_context(tmp_path: Path) -> None:
    view = _source(tmp_path, {"web/index.html": "x", "api/requirements.txt": "x"})
    web = plan_dockerfile(view, context="web")
    assert (web.origin, web.stack) == ("stack", "static") and "COPY . /www" in web.content
    api = plan_dockerfile(view, context="api", stack="python")
    assert api.stack == "python" and "requirements.txt" in api.content


def test_unknown_or_undetectable_stack(tmp_path: Path) -> None:
    view = _source(tmp_path, {"main.go": "package main", "Dockerfile": "FROM x\n"})
    with pytest.raises(UnknownStackError, match="unknown stack 'rust'"):
        plan_dockerfile(view, stack="rust")  # a typo fails even though a Dockerfile exists
    (tmp_path / "Dockerfile").unlink()
    with pytest.raises(UnknownStackError, match="cannot be detected"):
        plan_dockerfile(view)


def test_stack_template_errors_name_the_file(tmp_path: Path) -> None:
    stacks = tmp_path / "stacks"
    (stacks / "bad").mkdir(parents=True)
    (stacks / "bad" / "stack.yaml").write_text("detect: [x]\n")
    (stacks / "bad" / "Dockerfile.j2").write_text("FROM {{ base_image }}\n")
    view = _source(tmp_path / "src", {"x": "1"})
    with pytest.raises(DockerfileError, match=r"bad/Dockerfile.j2: cannot render.*base_image"):
        render_stack("bad", view, stacks_dir=stacks)
    (stacks / "broken").mkdir()
    (stacks / "broken" / "stack.yaml").write_text("detect: [y]\n")
    (stacks / "broken" / "Dockerfile.j2").write_text("FROM {% if %}\n")
    load_stacks.cache_clear()
    with pytest.raises(DockerfileError, match=r"broken/Dockerfile.j2:1:"):
        render_stack("broken", view, stacks_dir=stacks)
    load_stacks.cache_clear()
