"""A shell that sourced the demo's env.sh (as `make demo` tells you to) and then runs `make
test` must not send the suite to the demo's services or settings: every variable env.sh exports
is cleared by scripts/run-tests.sh. Seen: ENVFORGE_IMAGE_SOURCES from env.sh made 17 tests'
image builds refuse their temporary repositories."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def exported_by_env_sh() -> set[str]:
    demo = (ROOT / "scripts" / "demo.sh").read_text(encoding="utf-8")
    body = re.search(r'cat >"\$ENVFORGE_HOME/env\.sh" <<ENV\n(.*?)\nENV\n', demo, re.S)
    assert body is not None, "demo.sh no longer writes env.sh as this test reads it"
    names: set[str] = set()
    for line in body.group(1).splitlines():
        if line.startswith("export "):
            names |= set(re.findall(r"(?:^export |\s)([A-Z_][A-Z0-9_]*)=", line))
    return names


def cleared_by_run_tests() -> set[str]:
    script = (ROOT / "scripts" / "run-tests.sh").read_text(encoding="utf-8")
    statement = re.search(r"^unset ((?:[^\n]*\\\n)*[^\n]*)$", script, re.M)
    assert statement is not None, "run-tests.sh no longer clears variables with one unset"
    return set(statement.group(1).replace("\\\n", " ").split())


def test_every_variable_of_the_demo_env_is_cleared_for_the_suite() -> None:
    exported = exported_by_env_sh()
    assert {"PREFECT_API_URL", "KUBECONFIG", "VAULT_TOKEN", "ENVFORGE_IMAGE_SOURCES"} <= exported
    assert exported - cleared_by_run_tests() == set()
