"""A warm runner: Prefect and envforge imported once, a flow-run engine forked per request.

    .venv/bin/python -m envforge.launch.warm_runner \
        --socket .envforge/warm-runner/socket --preload flows

scripts/prefect-local.sh starts one beside the process worker and gives both the socket's
path (ENVFORGE_WARM_RUNNER_SOCKET); deployments run ``python -m envforge.launch.flow_start``
(envforge.launch.flow_start), which hands the flow run here. Per request:

1. before it accepts a caller, the runner checks that no envforge or flows source file changed
   since it imported them. If one did, it re-executes itself keeping its listening socket
   (``--listen-fd``), so edited code is never run from a stale import and the callers that
   arrive meanwhile wait in the socket's backlog for the new image instead of each starting
   cold (a cold start is 4-6 s of CPU: on a working tree others edit, a burst of 20 flow
   runs had 8 start cold while the runner re-warmed). Then it checks the caller (same user,
   SO_PEERCRED);
2. it forks a session process, which receives the caller's stdin/stdout/stderr, argv,
   environment and working directory, forks the engine in a process group of its own, and
   answers ``started <pid>``;
3. the engine process takes the caller's environment and stdio, refreshes Prefect's settings
   from that environment, and runs ``prefect.engine`` as ``python -m prefect.engine`` would,
   with its modules already imported;
4. the session forwards the caller's signals to the engine, kills the engine's process group
   if the caller goes away, and reports ``exit <code>`` or ``killed <signal>``.

The runner stays single-threaded (forking a threaded process can copy a held lock), never
touches the Prefect API itself and holds no flow state: each engine is a fresh fork of the
same warmed image. Its socket is born 0600 and every caller's uid is checked; it never
changes the mode of a folder, and removes nothing at its socket path but a stale socket of
its own user.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import json
import os
import pkgutil
import runpy
import select
import signal
import socket
import stat
import struct
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn

from envforge.launch.flow_start import PROTOCOL
from envforge.launch.prefect_tls import share_prefect_tls_context

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # envforge/launch/warm_runner.py -> the project
#: packages whose modules are imported up front (and watched for changes); `--preload` adds
#: the flows' own packages (scripts/prefect-local.sh passes `--preload flows`): what they import
#: stays warm, while they themselves are imported again in each engine (see forget)
PROJECT_PACKAGES = ("envforge",)
#: what a flow run imports lazily (Prefect's engines, the clients the actions use)
WARM_MODULES = (
    "prefect.engine", "prefect.flow_engine", "prefect.task_engine", "prefect.artifacts",
    "prefect.deployments.steps", "prefect._internal.metrics", "prefect.runner",
    "kubernetes.client", "kubernetes.config", "kubernetes.dynamic", "kubernetes.stream",
    "hvac", "psycopg", "faker", "jinja2", "git", "yaml", "requests",
)
#: what packages resolve lazily on first attribute access, by module. kubernetes' client (37)
#: imports an API class and its pydantic models only when first named: CoreV1Api alone is ~300
#: models, about 0.7 s of CPU in every engine that delivers a Secret or reads the cluster (a
#: third of a create run's engine CPU in bench/fleet.py's profile) unless resolved here once
WARM_ATTRIBUTES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("kubernetes.client", ("ApiClient", "Configuration", "CoreV1Api", "AppsV1Api",
                           "NetworkingV1Api", "CustomObjectsApi")),
)
MAX_REQUEST_BYTES = 4 * 1024 * 1024
POLL_S = 0.05


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} warm-runner[{os.getpid()}]: {message}",
          file=sys.stderr, flush=True)


def warm_up(packages: list[str]) -> list[str]:
    """Import the packages' modules and what flow runs import lazily; what failed, by name."""
    failed = []
    for package in packages:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if info.name.endswith("__main__"):
                continue
            try:
                importlib.import_module(info.name)
            except Exception as e:  # a module that cannot import here is imported by its run
                failed.append(f"{info.name} ({type(e).__name__})")
    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except Exception as e:
            failed.append(f"{name} ({type(e).__name__})")
    for name, attributes in WARM_ATTRIBUTES:
        for attribute in attributes:
            try:
                getattr(importlib.import_module(name), attribute)
            except Exception as e:
                failed.append(f"{name}.{attribute} ({type(e).__name__})")
    share_prefect_tls_context()
    return failed


def source_stamps() -> dict[str, int]:
    """mtime of every imported module file under the project (what a fork would run)."""
    stamps = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and path.startswith(str(PROJECT_ROOT)) and "/.venv/" not in path:
            try:
                stamps[path] = os.stat(path).st_mtime_ns
            except OSError:
                stamps[path] = -1
    return stamps


def changed_sources(stamps: dict[str, int]) -> list[str]:
    changed = []
    for path, stamp in stamps.items():
        try:
            now = os.stat(path).st_mtime_ns
        except OSError:
            now = -1
        if now != stamp:
            changed.append(path)
    return changed


def receive_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """The caller's request and its three stdio descriptors."""
    head, fds, _flags, _addr = socket.recv_fds(conn, 8, 3)
    while len(head) < 8:
        more = conn.recv(8 - len(head))
        if not more:
            raise ConnectionError("the caller closed the connection")
        head += more
    size = int.from_bytes(head, "big")
    if len(fds) != 3 or size > MAX_REQUEST_BYTES:
        for fd in fds:
            os.close(fd)
        raise ValueError("malformed request")
    body = bytearray()
    while len(body) < size:
        chunk = conn.recv(min(65536, size - len(body)))
        if not chunk:
            raise ConnectionError("the caller closed the connection")
        body.extend(chunk)
    request = json.loads(body)
    if request.get("protocol") != PROTOCOL:
        raise ValueError(f"protocol {request.get('protocol')!r}, expected {PROTOCOL}")
    return request, fds


def forget(packages: list[str]) -> None:
    """Drop the flows' own modules, so the engine imports them again under its environment
    (flow modules read ENVFORGE_TEMPLATE at import, as a cold process would read it)."""
    for name in [m for m in sys.modules if any(m == p or m.startswith(f"{p}.")
                                               for p in packages)]:
        del sys.modules[name]


def run_engine(request: dict[str, Any], fds: list[int], fresh: list[str]) -> NoReturn:
    """In the forked engine process: become the caller's ``python -m prefect.engine``; the
    `fresh` packages are imported again (with the caller's environment) when used."""
    code = 1
    try:
        os.setpgid(0, 0)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        # as a Python interpreter starts: a write to a connection the other side closed is a
        # BrokenPipeError the clients retry, not the engine's death (exit -13: 1 of 20 flow
        # runs of bench/fleet.py --prs 20 on a loaded machine); subprocesses get the default
        # back (subprocess' restore_signals)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["prefect.engine", *request["argv"]]
        from prefect.context import refresh_global_settings_context

        refresh_global_settings_context()  # the caller's PREFECT_* settings, not the runner's
        forget(fresh)
        sys.modules.pop("prefect.engine", None)  # as under `python -m`: run as __main__ only
        runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, int) and e.code is not None:
            print(e.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    # what the interpreter does at exit: wait for non-daemon threads, run atexit hooks
    try:
        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def session(conn: socket.socket, fresh: list[str]) -> NoReturn:
    """In the forked session process: start the engine, relay signals, report its end."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        request, fds = receive_request(conn)
    except (OSError, ValueError) as e:
        with _quiet:
            conn.sendall(f"refused {e}\n".encode())
        os._exit(1)
    pid = os.fork()
    if pid == 0:
        conn.close()
        run_engine(request, fds, fresh)
    for fd in fds:
        os.close(fd)
    run_id = request["env"].get("PREFECT__FLOW_RUN_ID") or " ".join(request["argv"]) or "?"
    log(f"flow run {run_id}: engine pid {pid}")
    with _quiet:
        conn.sendall(f"started {pid}\n".encode())
    buffer = b""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        readable, _, _ = select.select([conn], [], [], POLL_S)
        if not readable:
            continue
        try:
            chunk = conn.recv(1024)
        except OSError:
            chunk = b""
        if not chunk:  # the caller is gone (killed): so is its flow run
            log(f"flow run {run_id}: the worker's process went away; killing engine pid {pid}")
            with _quiet:
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os._exit(0)
        buffer += chunk
        while b"\n" in buffer:
            line, _, buffer = buffer.partition(b"\n")
            kind, _, value = line.decode().partition(" ")
            if kind == "signal" and value.isdigit() and int(value) in _FORWARDABLE:
                with _quiet:
                    os.kill(pid, int(value))
    if os.WIFSIGNALED(status):
        answer = f"killed {os.WTERMSIG(status)}"
    else:
        answer = f"exit {os.waitstatus_to_exitcode(status)}"
    log(f"flow run {run_id}: engine pid {pid} {answer}")
    with _quiet:
        conn.sendall(f"{answer}\n".encode())
    os._exit(0)


_quiet = contextlib.suppress(OSError)  # the caller may have gone away
_FORWARDABLE = {int(signal.SIGTERM), int(signal.SIGINT), int(signal.SIGHUP)}


def decline(conn: socket.socket, answer: str) -> None:
    """Answer a caller that is to start cold: read its request first (closing a connection
    with unread data resets it, and the caller would see a reset instead of the answer)."""
    with contextlib.suppress(OSError, ValueError):
        conn.settimeout(5)
        _, fds = receive_request(conn)
        for fd in fds:
            os.close(fd)
    with _quiet:
        conn.sendall(f"{answer}\n".encode())
    conn.close()


def peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


#: a Unix socket's path fits in sun_path: 108 bytes on Linux, the last one a NUL
MAX_SOCKET_PATH = 107


def socket_problem(path: Path) -> str | None:
    """Why the runner cannot listen at `path` (one line), or None."""
    size = len(os.fsencode(str(path)))
    if size > MAX_SOCKET_PATH:
        return (f"the socket path {path} is {size} bytes and a Unix socket's path is at most "
                f"{MAX_SOCKET_PATH}: pass a shorter --socket (scripts/prefect-local.sh moves it "
                "under /tmp for deep checkouts)")
    if path.parent.exists() and path.parent.stat().st_uid != os.getuid():
        return (f"{path.parent} belongs to another user: pass a --socket in a directory of "
                "your own")
    return None


def listen(path: Path) -> socket.socket:
    """A Unix socket only this user may connect to (the socket is 0600 and every caller's
    uid is checked). A folder that is missing is made 0700; one that exists is left as it
    is (never chmod-ed: it may be shared). Only a stale socket of this user is removed from
    the path; anything else there (a file, a folder, a link, a live runner's socket) is
    refused in one line."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    problem = path_occupied(path)
    if problem:
        raise SystemExit(f"warm-runner: {problem}; flow runs start cold meanwhile")
    remove_own_socket(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_mask = os.umask(0o177)  # the socket is born 0600: no moment another user may connect
    try:
        server.bind(str(path))
    finally:
        os.umask(old_mask)
    os.chmod(path, 0o600)
    server.listen(64)  # a burst of flow runs waits here while the runner re-warms
    return server


def path_occupied(path: Path) -> str | None:
    """Why the runner must not take ``path`` over (one line), or None (free, or a stale
    socket of this user)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISSOCK(info.st_mode):
        return (f"{path} exists and is not a socket (a file, folder or link is never removed); "
                "pass another --socket or remove it yourself")
    if info.st_uid != os.getuid():
        return f"{path} is another user's socket; pass a --socket of your own"
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        return None  # nobody answers: a stale socket of a runner that was killed
    finally:
        probe.close()
    return f"another warm runner already listens on {path}"


def remove_own_socket(path: Path) -> None:
    """Remove ``path`` only if it is a socket of this user (never a file, folder or link)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISSOCK(info.st_mode) and info.st_uid == os.getuid():
        path.unlink(missing_ok=True)


def serve(path: Path, preload: list[str], listen_fd: int | None = None) -> NoReturn:
    """Warm up, then fork a session per caller until SIGTERM; ``listen_fd``: the listening
    socket a previous image of this runner handed over (see re_execute)."""
    started = time.monotonic()
    failed = warm_up([*PROJECT_PACKAGES, *preload])
    if threading.active_count() != 1:
        log(f"importing started threads ({[t.name for t in threading.enumerate()]}); "
            "forking would not be safe, so flow runs start cold")
        sys.exit(1)
    stamps = source_stamps()
    server = (socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=listen_fd)
              if listen_fd is not None else listen(path))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # sessions are reaped by the kernel
    stop = {"now": False}

    def on_term(_signum: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    log(f"ready on {path} in {time.monotonic() - started:.1f} s ({len(sys.modules)} modules"
        + (f"; not warmed: {', '.join(failed)}" if failed else "") + ")")
    while not stop["now"]:
        try:
            readable, _, _ = select.select([server], [], [], 1.0)
        except InterruptedError:
            continue
        if not readable:
            continue
        changed = changed_sources(stamps)
        if changed:  # before accepting: the caller waits in the backlog for the new image
            log(f"{len(changed)} source file(s) changed (e.g. {changed[0]}); restarting")
            re_execute(server, path, preload)
        conn, _ = server.accept()
        if peer_uid(conn) != os.getuid():
            decline(conn, "refused another user")
            continue
        if os.fork() == 0:
            server.close()
            session(conn, preload)
        conn.close()
    server.close()
    remove_own_socket(path)
    log("stopped")
    sys.exit(0)


def re_execute(server: socket.socket, path: Path, preload: list[str]) -> NoReturn:
    """Become a fresh runner (new imports) that keeps listening on ``server``: connections
    made meanwhile stay queued on it and are served once the new image is warm."""
    fd = server.fileno()
    os.set_inheritable(fd, True)
    os.execv(sys.executable, [sys.executable, "-m", "envforge.launch.warm_runner",
                              "--socket", str(path), f"--listen-fd={fd}",
                              *(f"--preload={name}" for name in preload)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", required=True, type=Path,
                        help="the Unix socket to listen on (ENVFORGE_WARM_RUNNER_SOCKET)")
    parser.add_argument("--preload", action="append", default=[], metavar="PACKAGE",
                        help="also import every module of this package (the flows' code)")
    parser.add_argument("--listen-fd", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    path = args.socket.resolve()
    if args.listen_fd is not None:  # re-executed: the socket at path is already ours
        serve(path, args.preload, args.listen_fd)
    problem = socket_problem(path)
    if problem:
        print(f"warm-runner: {problem}; flow runs start cold meanwhile", file=sys.stderr)
        raise SystemExit(2)
    serve(path, args.preload)


if __name__ == "__main__":
    main()
