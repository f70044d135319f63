"""A Redis of one test's own, for tests that stop, restart or flush it: the shared servers are never touched."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shopstream.bench import processes
from tests.servers import ServerUnavailable, wait_for_redis


class PrivateRedis:
    """``redis-server`` on a free port, without persistence: a restart comes back empty, as a cache does."""

    def __init__(self, workdir: Path) -> None:
        if shutil.which("redis-server") is None:
            raise ServerUnavailable("redis-server is not installed (scripts/servers.sh install redis)")
        self.port = processes.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.workdir / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self.workdir)],
                stdout=log, stderr=subprocess.STDOUT,
            )
        wait_for_redis(self.url)

    def stop(self) -> None:
        if self.process is not None:
            processes.stop(self.process)
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A running private Redis, stopped after the test."""
    server = PrivateRedis(tmp_path)
    try:
        server.start()
    except ServerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()
