"""The nunjucks oracle from Python: installs the pinned npm packages once (``npm ci`` from the
committed package-lock.json) and talks to ``oracle.js`` over one long-lived node process."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


class OracleError(Exception):
    """nunjucks (as Backstage runs it) failed; the message is its one-line error."""


def install() -> None:
    """``npm ci`` unless node_modules already matches the lock file."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise RuntimeError("the Backstage oracle needs Node.js and npm (Debian: nodejs, npm)")
    stamp = HERE / "node_modules" / ".package-lock.json"
    lock = HERE / "package-lock.json"
    # Parallel test workers each start an oracle: one `npm ci` at a time (it empties
    # node_modules first, under the feet of another worker's), the others then find it done.
    with lock.open() as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime:
            return
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE,
                       check=True, timeout=600, stdout=subprocess.DEVNULL)


class Oracle:
    """One node process running oracle.js; requests and answers are JSON lines."""

    def __init__(self) -> None:
        install()
        self._proc = subprocess.Popen(
            ["node", str(HERE / "oracle.js")], cwd=HERE, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, encoding="utf-8", bufsize=1)

    def ask(self, request: dict[str, Any]) -> Any:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the nunjucks oracle process ended")
        answer = json.loads(line)
        if not answer["ok"]:
            raise OracleError(answer["error"])
        return answer["result"]

    def render(self, template: str, context: dict[str, Any], **options: Any) -> str:
        """``template`` as Backstage's SecureTemplater renders a skeleton file
        (``compat``, ``trimBlocks``, ``lstripBlocks`` as fetch:template's inputs)."""
        return str(self.ask({"op": "render", "template": template, "context": context,
                             **options}))

    def render_value(self, value: Any, context: dict[str, Any]) -> Any:
        """A template.yaml value as NunjucksWorkflowRunner.render() gives it to an action;
        ``UNDEFINED`` when Backstage drops it."""
        result = self.ask({"op": "renderValue", "value": value, "context": context})
        return UNDEFINED if result == {"$undefined": True} else result

    def render_tree(self, src: Path, out: Path, step_input: dict[str, Any]) -> list[str]:
        return list(self.ask({"op": "renderTree", "src": str(src), "out": str(out),
                              "input": step_input}))

    def run_template(self, template_file: Path, workspace: Path, parameters: dict[str, Any],
                     user: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
        return dict(self.ask({"op": "runTemplate", "template": str(template_file),
                              "workspace": str(workspace), "parameters": parameters,
                              "user": user, "outputs": outputs}))

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=10)


UNDEFINED = {"$undefined": True}
