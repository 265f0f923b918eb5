"""`envforge ... | head` stops quietly when the reader goes away, with no traceback."""

from __future__ import annotations

import subprocess
import sys


def test_a_closed_pipe_ends_quietly() -> None:
    shell = (f"{sys.executable} -m envforge templates show java-service | true; "
             "echo ${PIPESTATUS[0]}")
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=120,
                          check=False)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout.strip() == "141"  # 128 + SIGPIPE, as a Unix tool ends
