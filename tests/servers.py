"""Real servers for tests: an ``mlflow server`` process, and a small HTTP proxy of our own in front of it.

The proxy checks credentials (basic auth or a bearer token) the way an auth gateway would, counts requests per
path, and can *lose a response*: forward a request, let the server do the work, then close the connection without
answering, which is what makes MLflow's client retry a POST. Each server gets a free loopback port; processes are
started in their own process group and torn down with it.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.request import urlopen

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "content-length"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")
        time.sleep(0.3)


class MLflowServer:
    """``mlflow server`` with a SQLite backend store and served artifacts, in its own process group."""

    def __init__(self, root: Path, *, backend_uri: str | None = None) -> None:
        self.root = Path(root)
        self.backend_uri = backend_uri or f"sqlite:///{self.root / 'mlflow-server.db'}"
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MLflowServer:
        self.root.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        mlflow = str(Path(sys.executable).with_name("mlflow"))
        self.log = open(self.root / f"mlflow-server-{self.port}.log", "ab")
        self.process = subprocess.Popen(
            [mlflow, "server", "--backend-store-uri", self.backend_uri, "--serve-artifacts",
             "--artifacts-destination", str(self.root / "artifacts"), "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        wait_http(self.url + "/health")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None


class Proxy:
    """A threaded reverse proxy to ``upstream`` that checks ``Authorization`` and can lose responses."""

    def __init__(self, upstream: str, *, authorization: str | None = None) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.authorization = authorization
        self.requests: Counter = Counter()
        self.rejected = 0
        self.seen_authorizations: set[str] = set()
        self._lose: Counter = Counter()
        self._lock = threading.Lock()
        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Proxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def lose_response(self, path_suffix: str, times: int = 1) -> None:
        """Forward the next ``times`` requests whose path ends with ``path_suffix``, then drop their answers."""
        with self._lock:
            self._lose[path_suffix] += times

    def count(self, path_suffix: str) -> int:
        return sum(n for path, n in self.requests.items() if path.endswith(path_suffix))

    def _take_loss(self, path: str) -> bool:
        with self._lock:
            for suffix, left in self._lose.items():
                if left and path.endswith(suffix):
                    self._lose[suffix] -= 1
                    return True
        return False

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _forward(self):
                path = self.path.split("?", 1)[0]
                with proxy._lock:
                    proxy.requests[path] += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                given = self.headers.get("Authorization")
                if given:
                    proxy.seen_authorizations.add(given)
                if proxy.authorization and given != proxy.authorization:
                    with proxy._lock:
                        proxy.rejected += 1
                    payload = b'{"error_code": "UNAUTHENTICATED", "message": "credentials required"}'
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
                connection = http.client.HTTPConnection(proxy.upstream, timeout=120)
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                connection.close()
                if proxy._take_loss(path):
                    # The server did the work; the answer never arrives.
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

        return Handler
