"""Starting and stopping shopstream's own processes (worker, collector), for the demo and the tests."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def start(component: str, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Run ``python -m shopstream <component>`` with its output appended to ``log_path``."""
    with log_path.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "shopstream", component], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def wait_ready(process: subprocess.Popen[bytes], url: str, timeout_s: float = 90.0) -> None:
    """Poll ``url/readyz`` until it answers 200; raise with the reason if the process dies or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} was not ready within {timeout_s:.0f}s")


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> None:
    """Signal the process and wait; kill it if it does not exit in time."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
