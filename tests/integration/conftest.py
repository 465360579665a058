import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def prefect_env(tmp_path_factory) -> dict:
    """An environment for `tunegate` subprocesses: one real Prefect server for the whole session.

    Each CLI call would otherwise start (and migrate) a temporary server of its own: 8-20 s per
    flow on a 2-core machine, for the ~20 flows of the suite. Tests that inspect a server's
    records start their own (``prefect_server``).
    """
    env = dict(os.environ)
    env["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["HF_HUB_OFFLINE"] = "1"
    server_env = {
        **env,
        "PREFECT_HOME": str(tmp_path_factory.mktemp("prefect-server-home")),
        # nothing is scheduled on this server: its background loops would only take CPU from the tests
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
    }
    server_env.pop("PREFECT_API_URL", None)
    with _server(server_env) as api:
        env["PREFECT_API_URL"] = api
        yield env


def run_cli(args, *, env, cwd, timeout=1200) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [sys.executable, "-m", "tunegate.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )
    # keep the output visible in the test log when something fails
    sys.stdout.write(out.stdout[-4000:])
    sys.stderr.write(out.stderr[-4000:])
    return out


def api(base: str, path: str, body: dict | None = None, attempts: int = 6):
    """One call to a Prefect server's REST API (POST when there is a body).

    A 503 is retried with backoff, as Prefect's own client does: its SQLite answers 503 while the
    scheduler or a worker holds the write lock on a loaded 2-core machine.
    """
    data = None if body is None else json.dumps(body).encode()
    for attempt in range(attempts):
        req = urllib.request.Request(
            f"{base}{path}",
            data=data,
            headers={"Content-Type": "application/json"},
            method="POST" if body is not None else "GET",
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            if e.code != 503 or attempt == attempts - 1:
                raise
            time.sleep(2**attempt)


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Terminate a process this test started, killing it if it does not exit in time."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, failure, timeout: float = 120) -> None:
    """Until ``url`` answers 200; fails the test (``failure``: the message, or what builds it) when ``proc`` exits
    or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            pytest.fail(failure() if callable(failure) else failure)
        time.sleep(0.5)


@contextlib.contextmanager
def _server(env: dict):
    """A `prefect server start` on a free loopback port; yields its API URL, stops it after."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        wait_healthy(f"{api}/health", proc, "the Prefect server did not start within 120 s")
        yield api
    finally:
        stop(proc)


@pytest.fixture
def prefect_server(tmp_path, prefect_env):
    """A Prefect server of this test's own (its records are the test's only)."""
    # the scheduler looks every 5 s instead of 60 s, so a test sees the runs a schedule creates
    env = {
        **prefect_env,
        "PREFECT_HOME": str(tmp_path / "server-home"),
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
    }
    env.pop("PREFECT_API_URL", None)
    with _server(env) as api:
        yield api


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on a free loopback port (SQLite backend, its own artifact folder); yields its URL.
    Shared by the session: each test logs to an experiment of its own."""
    tmp = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}", "--artifacts-destination", str(tmp / "artifacts")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(
            f"{url}/health", proc, lambda: "mlflow server did not come up:\n" + (tmp / "server.log").read_text()[-3000:]
        )
        yield url
    finally:
        stop(proc)
        log.close()
