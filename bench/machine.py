"""The machine a result was measured on, and how busy it was: figures mean little without it."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import psutil

PACKAGES = ("shopstream", "faust-streaming", "aiokafka", "redis", "hiredis", "orjson", "river", "numpy", "aiohttp")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def describe() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {p: _version(p) for p in PACKAGES},
    }


def load_average() -> list[float]:
    """1, 5 and 15 minute load: above the core count, other processes competed for the CPU."""
    return [round(x, 2) for x in os.getloadavg()]
