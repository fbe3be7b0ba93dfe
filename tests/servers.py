"""Real servers for the outage and hostile-traffic tests: the example app under
gunicorn, a private throwaway PostgreSQL cluster, raw HTTP over a socket, and
a worker's resident memory from ``/proc``.
"""

from __future__ import annotations

import contextlib
import glob
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import EXAMPLE_ENVIRONMENT

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _no_control_socket() -> list[str]:
    """gunicorn 25+ opens a control socket at one fixed path per user, which
    concurrent servers would share: off, where the option exists."""
    from gunicorn.config import KNOWN_SETTINGS

    return [flag for s in KNOWN_SETTINGS if s.name == "control_socket_disable" for flag in s.cli]


def http_request(port, method, path, body=None, headers=None, timeout=30):
    """(status, headers, body bytes) of one request on a new connection."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@contextlib.contextmanager
def example_server(instance, database_url, port, log_path, workers=1, threads=1, replay_cache=None):
    """The example app under gunicorn (sync workers, or gthread with ``threads``),
    as an operator runs it; yields the master process, always stopped.

    The app is created once and forked (``--preload``): nothing connects before
    the fork (engines and the Redis pool connect on first use, in each worker).
    ``replay_cache`` sets ``EXAMPLE_APP_REPLAY_CACHE`` (e.g. a Redis URL).
    """
    env = {k: v for k, v in os.environ.items() if k not in EXAMPLE_ENVIRONMENT}
    env.update(
        EXAMPLE_APP_INSTANCE_PATH=str(instance),
        EXAMPLE_APP_DATABASE_URL=database_url,
        EXAMPLE_APP_BASE_URL=f"http://{HOST}:{port}",
        EXAMPLE_APP_LOG_LEVEL="INFO",
    )
    if replay_cache:
        env["EXAMPLE_APP_REPLAY_CACHE"] = replay_cache
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        f"--workers={workers}",
        f"--threads={threads}",
        "--worker-class=" + ("gthread" if threads > 1 else "sync"),
        f"--bind={HOST}:{port}",
        "--timeout=60",
        "--preload",
        *_no_control_socket(),
        "example_app:create_app()",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, Path(log_path).read_text(errors="replace")
            with contextlib.suppress(OSError):
                path = "/.well-known/oauth-authorization-server"
                if http_request(port, "GET", path, timeout=5)[0] == 200:
                    break
            assert time.monotonic() < deadline, "gunicorn did not become ready"
            time.sleep(0.1)
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def initialise_example(instance, database_url, port, assertions):
    """``flask --app example_app init`` and ``mint``, in this process: the
    database, signing key, demo IdP, user and client for a server on ``port``;
    then ``assertions`` signed assertions. Returns (credentials, {ID: assertion})."""
    from example_app import create_app
    from example_app.bootstrap import initialize
    from example_app.idp import init_demo_idp
    from example_app.idp import mint_assertion
    from example_app.models import db
    from example_app.oauth import init_signing_key

    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": database_url, "EXAMPLE_APP_BASE_URL": f"http://{HOST}:{port}"},
        instance_path=str(instance),
    )
    with app.app_context():
        credentials = initialize()
        init_signing_key(app)
        init_demo_idp(app)
        minted = {}
        for _ in range(assertions):
            assertion_id = f"_{uuid.uuid4().hex}"
            minted[assertion_id] = mint_assertion(
                app, credentials.user_email, assertion_id=assertion_id
            )
        db.session.remove()
        db.engine.dispose()
    return credentials, minted


def worker_pids(master: subprocess.Popen) -> list[int]:
    """The gunicorn workers: the master's child processes."""
    children = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
    return [int(pid) for pid in children]


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB (``VmRSS`` of ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float
    sent: int


def raw_post(port, path, headers, chunks: Iterable[bytes], chunked=False, timeout=60):
    """POST a streamed body over a raw socket: ``chunks`` are sent from a thread
    (generated, never held whole) while the answer is read, so a server that
    answers before reading everything is seen answering. Returns a RawResponse
    with how many body bytes the server accepted before it answered."""
    sock = socket.create_connection((HOST, port), timeout=timeout)
    lines = [f"POST {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    sent = [0]
    stop = threading.Event()

    def send():
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                data = b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk
                sock.sendall(data)
                sent[0] += len(chunk)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server answered and closed: expected
            pass

    started = time.monotonic()
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
        seconds = time.monotonic() - started
        result = RawResponse(response.status, dict(response.getheaders()), body, seconds, sent[0])
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        sender.join(timeout=30)
    return result


# -- a private PostgreSQL cluster -------------------------------------------------------


def postgres_binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with initdb and pg_ctl."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parent.parent.name.split(".")[0]),
    )
    return Path(found[-1]).parent if found else None


class PrivateCluster:
    """A throwaway PostgreSQL cluster in a temporary directory, on a free
    loopback port, run as the ``postgres`` user: stopping it touches no one
    else's database (not the shared one of ``.ci/postgres.sh``)."""

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="saml2-outage-pg-"))
        self.data = self.directory / "data"
        os.chmod(self.directory, 0o755)
        shutil.chown(self.directory, "postgres", "postgres")
        self.url = f"postgresql+psycopg://postgres@{HOST}:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", str(self.binaries / args[0]), *args[1:]]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (command, done.stdout, done.stderr, self.server_log())

    def server_log(self) -> str:
        log = self.directory / "server.log"
        return log.read_text(errors="replace")[-3000:] if log.exists() else ""

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses={HOST} "
            "-c fsync=off -c max_connections=100"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options,
            "-l", str(self.directory / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self) -> None:
        """A fast shutdown: open sessions are terminated, as in a real outage."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivateCluster]:
    """A started private cluster; skipped without PostgreSQL's binaries (failed
    with ``SAML2_TEST_REQUIRE_POSTGRES=1``) or when not root."""
    binaries = postgres_binaries()
    required = os.environ.get("SAML2_TEST_REQUIRE_POSTGRES") == "1"
    if binaries is None or os.geteuid() != 0 or shutil.which("runuser") is None:
        reason = "PostgreSQL binaries (/usr/lib/postgresql/*/bin), root and runuser needed"
        if required:
            pytest.fail(f"SAML2_TEST_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    cluster = PrivateCluster(binaries)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
