"""Start and stop a real ``redis-server`` for tests and benchmarks. No pytest, no redis-py.

>>> with RedisServer() as server:          # doctest: +SKIP
...     Cache(server.url + "/0")

The server listens on 127.0.0.1 on a free port and on a unix socket, with its files in a
temp dir that :meth:`RedisServer.close` removes. :meth:`stop` and :meth:`start` again reuse
the same port, socket and data dir, so an outage can be staged; with ``persistent=True``
every write is fsynced to the AOF first, so even a SIGKILL loses nothing that was stored.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["NOT_FOUND", "RedisServer", "find_redis_server", "free_port"]

NOT_FOUND = "redis-server not found: apt-get install redis-server"


def find_redis_server() -> str | None:
    """Path of the ``redis-server`` binary, or None."""
    return shutil.which("redis-server") or next(
        (
            p
            for p in ("/usr/bin/redis-server", "/usr/local/bin/redis-server")
            if os.access(p, os.X_OK)
        ),
        None,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, bus: bool = False) -> int:
    """A free TCP port on 127.0.0.1; with ``bus``, port + 10000 (Cluster's bus) is free too."""
    while True:
        port = _free_port()
        if not bus or (port + 10000 < 65536 and _is_free(port + 10000)):
            return port


class RedisServer:
    """A ``redis-server`` child process.

    Args:
        persistent: append-only file with ``appendfsync always``: data survives a kill.
        password: require this password (``requirepass``).
        port: listen on this port (default: a free one).
        extra_args: more ``redis-server`` arguments (``--cluster-enabled yes`` ...).
    """

    def __init__(
        self,
        *,
        persistent: bool = False,
        password: str | None = None,
        port: int | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        binary = find_redis_server()
        if binary is None:
            raise FileNotFoundError(NOT_FOUND)
        self.binary = binary
        self.persistent = persistent
        self.password = password
        # Short path: a unix socket path must fit in ~100 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="sc-redis-"))
        self.socket_path = str(self.dir / "redis.sock")
        self.port = port or _free_port()
        self.extra_args = list(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:PORT`` (append ``/DB`` and options)."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}"

    @property
    def unix_url(self) -> str:
        """``redis+unix://PATH`` (append ``?db=N`` and options)."""
        return f"redis+unix://{self.socket_path}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        """Start the server (again, on the same port) and wait until it answers PING."""
        if self.running:
            return
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--unixsocket", self.socket_path, "--unixsocketperm", "700",
            "--dir", str(self.dir), "--save", "", "--daemonize", "no",
            "--logfile", str(self.dir / "redis.log"), "--protected-mode", "no",
        ]  # fmt: skip
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        args += self.extra_args
        self._proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        delay = 0.005
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                self._proc = None
                raise RuntimeError(f"redis-server exited at start on port {self.port}:\n{log}")
            if self._ping():
                return
            time.sleep(delay)  # polling the port, with a deadline
            delay = min(delay * 2, 0.1)
        self.stop(kill=True)
        raise RuntimeError(f"redis-server did not answer on port {self.port} in {timeout}s")

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                if self.password:
                    s.sendall(f"AUTH {self.password}\r\n".encode())
                    s.recv(64)
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, *, kill: bool = False, timeout: float = 20.0) -> None:
        """Stop the server: SIGKILL (a crash) if ``kill``, else SIGTERM (a clean shutdown)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def pause(self) -> None:
        """SIGSTOP the server: it accepts connections but never answers (a hung host)."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Stop the server and remove its files."""
        self.resume()
        self.stop(kill=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
