"""`env shell` on a real terminal (a pseudo-terminal): raw mode (keys go to the container, the
container's tty echoes them, once), the terminal size sent at start and again on SIGWINCH, and
the remote exit code returned."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.integration.cluster.conftest import ClusterUnderTest, seed_environment

REPO = Path(__file__).resolve().parents[3]
CHILD = """
import argparse, sys
from envforge.cluster.cli import add_env_commands
from tests.services_fixtures import make_services
parser = argparse.ArgumentParser()
parser.set_defaults(make_services=make_services)  # as envforge.cli.build_parser does
add_env_commands(parser.add_subparsers().add_parser("env").add_subparsers())
args = parser.parse_args(["env", *sys.argv[1:]])
sys.exit(args.handler(args))
"""


def set_size(fd: int, rows: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def read_until(fd: int, marker: bytes, seen: bytearray, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"never saw {marker!r}; got {bytes(seen)!r}"
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk


@pytest.mark.slow  # a child interpreter imports envforge and Prefect: ~4 s
def test_interactive_shell_on_a_terminal(cluster: ClusterUnderTest, env_name: str) -> None:
    """Through the real API server's exec (v5 websocket) to the kubelet, whose runtime runs
    the shell in the container behind a pseudo-terminal (kwok: on this machine)."""
    seed_environment(cluster, env_name)
    pid, master = pty.fork()
    if pid == 0:  # the child: `envforge env shell NAME` on the pseudo-terminal
        os.chdir(REPO)
        os.environ["PYTHONPATH"] = str(REPO)
        os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
        os.execv(sys.executable, [sys.executable, "-c", CHILD, "shell", env_name,
                                  "--namespace", env_name, "--command",
                                  "env PS1=zq$ TERM=dumb /bin/sh"])
    seen = bytearray()
    try:
        set_size(master, 30, 100)
        read_until(master, b"zq$", seen, timeout=120)  # the child imports envforge first
        os.write(master, b"echo zq-marker\r")
        read_until(master, b"zq-marker\r\n", seen)
        os.write(master, b"stty size\r")
        read_until(master, b"30 100", seen)
        set_size(master, 50, 120)  # the kernel sends the child SIGWINCH
        time.sleep(0.5)
        os.write(master, b"stty size\r")
        read_until(master, b"50 120", seen)
        os.write(master, b"exit 4\r")
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(master)
    # the kubelet reports exit 4 as an ExitCode cause: the shell's exit code is ours (kwok's
    # local exec reports an internal error, "exit status 4": envforge's exit 1, never 0)
    assert os.WEXITSTATUS(status) == (4 if cluster.image else 1), bytes(seen)[-600:]
    # raw mode: only the remote tty echoed what was typed (a cooked local terminal would
    # have echoed it a second time)
    assert bytes(seen).count(b"echo zq-marker") == 1
