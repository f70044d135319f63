"""Child processes of the demo, the bench and the tests: started with their own log, stopped by pid."""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def local_collector_env(port: int, *sites: str) -> tuple[dict[str, str], str]:
    """Settings of a collector on 127.0.0.1 that the demo, the bench and the tests post to, and its write key
    (fresh, for ``sites``, else for the collector's own origin): one trusted client, so no rate limits."""
    key = f"local-{secrets.token_hex(8)}"
    keys = ",".join(f"{key}={site}" for site in sites or (f"http://127.0.0.1:{port}",))
    env = {"SHOPSTREAM_HOST": "127.0.0.1", "SHOPSTREAM_PORT": str(port), "SHOPSTREAM_WRITE_KEYS": keys,
           "SHOPSTREAM_RATE_LIMIT_PER_KEY": "0", "SHOPSTREAM_RATE_LIMIT_PER_ADDRESS": "0"}
    return env, key


def start(module: str, args: list[str], env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Run ``python -m module args`` with ``env``, its output appended to ``log_path``."""
    with log_path.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args], env=dict(env), stdout=out, stderr=subprocess.STDOUT
        )


def start_component(component: str, env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``shopstream worker`` or ``shopstream collector``."""
    return start("shopstream.cli", [component], env, log_path)


def tail(log_path: Path, lines: int = 30) -> str:
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:]) if log_path.exists() else ""


def wait_ready(
    process: subprocess.Popen[bytes], url: str, timeout_s: float = 90.0, log_path: Path | None = None
) -> None:
    """Poll ``url/readyz`` until it answers 200; raise with the reason (and the log's tail) otherwise."""
    deadline = time.monotonic() + timeout_s

    def log() -> str:
        return f"\n{tail(log_path)}" if log_path is not None else ""

    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with code {process.returncode}{log()}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} was not ready within {timeout_s:.0f}s{log()}")


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> None:
    """Signal the process (Faust and aiohttp shut down cleanly on SIGTERM); kill it if it hangs."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
