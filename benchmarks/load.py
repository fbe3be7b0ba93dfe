"""``--load``: gunicorn with two workers on 127.0.0.1, both grants side by side.

The load generator is bounded: a fixed number of pre-minted requests per
grant, a fixed number of client threads, and a time cap after which no new
request starts. Phases alternate between the grants in ABBA order (SAML, JWT,
JWT, SAML, ...) so both see the same machine. Replay protection is on for
both: our ``SQLAlchemyReplayCache`` on the SQLite file the tokens go to.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from cryptography.hazmat.primitives import serialization

from authlib_saml2_grant import SAML2_BEARER_GRANT_TYPE

from .app import JWT_BEARER_GRANT_TYPE
from .app import create_app
from .app import db
from .endpoint import BASIC_AUTH
from .endpoint import certificate_pem
from .workload import Workload

__all__ = ["LoadResult", "run_load"]

HOST = "127.0.0.1"


@dataclass(frozen=True)
class LoadResult:
    name: str
    requests: int
    errors: int
    seconds: float
    #: Requests per second of each round, in order (the spread shows the noise).
    rounds: tuple[float, ...] = ()

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _wait_ready(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {process.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start listening in time")


def _prepare(workload: Workload, directory: str, database: str | None = None) -> None:
    """Write the keys into ``directory``; create and seed the database
    (``database``: a URL, default a SQLite file in ``directory``)."""
    with open(os.path.join(directory, "idp.pem"), "w", encoding="ascii") as handle:
        handle.write(certificate_pem(workload))
    with open(os.path.join(directory, "jwt.pem"), "wb") as handle:
        handle.write(
            workload.rsa_idp.key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    app = create_app(
        database or os.path.join(directory, "bench.db"),
        certificate_pem(workload),
        workload.jwt_public_key,
        create=True,
    )
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _phase(port: int, bodies: list[tuple[str, bytes, dict]], threads: int, deadline: float):
    """Send ``bodies`` with ``threads`` clients; return (done, errors, seconds)."""
    lock = threading.Lock()
    pending = list(reversed(bodies))
    counts = {"done": 0, "errors": 0}

    def worker() -> None:
        while time.monotonic() < deadline:
            with lock:
                if not pending:
                    return
                path, body, headers = pending.pop()
            connection = http.client.HTTPConnection(HOST, port, timeout=30)
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                ok = False
            finally:
                connection.close()
            with lock:
                counts["done"] += 1
                counts["errors"] += not ok

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    start = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return counts["done"], counts["errors"], time.perf_counter() - start


def run_load(
    workload: Workload,
    directory: str,
    requests: int = 1200,
    phases: int = 6,
    threads: int = 4,
    time_cap: float = 120.0,
) -> list[LoadResult]:
    """Requests per second of both grants through gunicorn (2 sync workers)."""
    _prepare(workload, directory)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    saml_headers = {**form, "Authorization": BASIC_AUTH}
    saml = [
        (
            "/oauth/token",
            urlencode({"grant_type": SAML2_BEARER_GRANT_TYPE, "assertion": workload.saml()}),
            saml_headers,
        )
        for _ in range(requests)
    ]
    jwts = [
        (
            "/oauth/token",
            urlencode({"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": workload.jwt()}),
            form,
        )
        for _ in range(requests)
    ]
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers=2",
        "--worker-class=sync",
        f"--bind={HOST}:{port}",
        "--log-level=warning",
        "benchmarks.wsgi:app",
    ]
    env = {**os.environ, "SAML2_BENCH_DIR": directory}
    process = subprocess.Popen(command, env=env, cwd=os.getcwd())
    encoded = {
        name: [(p, b.encode(), h) for p, b, h in bodies]
        for name, bodies in (("SAML2BearerGrant", saml), ("JWTBearerGrant + jti replay", jwts))
    }
    return run_abba(process, port, encoded, 20, phases, threads, time.monotonic() + time_cap)


def run_abba(
    process: subprocess.Popen,
    port: int,
    bodies: dict[str, list[tuple[str, bytes, dict]]],
    warm: int,
    phases: int,
    threads: int,
    deadline: float,
) -> list[LoadResult]:
    """Load a started server: ``warm`` requests of each candidate, then
    ``phases`` rounds of each in ABBA order; the server is stopped afterwards."""
    totals = {name: [0, 0, 0.0] for name in bodies}
    rounds: dict[str, list[float]] = {name: [] for name in bodies}
    order = list(bodies)
    try:
        _wait_ready(port, process)
        _phase(port, [body for name in order for body in bodies[name][:warm]], threads, deadline)
        size = max(1, (len(bodies[order[0]]) - warm) // phases)
        for index in range(phases):
            chunk = slice(warm + index * size, warm + (index + 1) * size)
            # ABBA: each candidate goes first in half the rounds, so a machine
            # that drifts faster or slower over the run favours neither.
            for name in order if index % 2 == 0 else order[::-1]:
                done, errors, seconds = _phase(port, bodies[name][chunk], threads, deadline)
                total = totals[name]
                total[0] += done - errors
                total[1] += errors
                total[2] += seconds
                if done:  # not a phase the time cap cut off before it started
                    rounds[name].append((done - errors) / seconds)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
    return [LoadResult(name, *values, tuple(rounds[name])) for name, values in totals.items()]
