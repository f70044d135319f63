"""Finds the local Kafka and Redis, starting them with scripts/servers.sh as the demo does, and removes
what a benchmark wrote to Redis."""

from __future__ import annotations

import shlex
import socket
import subprocess
from pathlib import Path

import redis
import redis.asyncio as aioredis

SERVERS_SH = Path(__file__).resolve().parent.parent / "scripts" / "servers.sh"


def _answers(bootstrap: str, redis_url: str) -> bool:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=2):
            pass
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (OSError, redis.RedisError):
        return False


def ensure_servers(bootstrap: str, redis_url: str) -> tuple[str, str]:
    """The endpoints to use: the given ones if they answer, else those servers.sh starts."""
    if _answers(bootstrap, redis_url):
        return bootstrap, redis_url
    if not SERVERS_SH.exists():
        raise RuntimeError(f"Kafka at {bootstrap} or Redis at {redis_url} does not answer, and no {SERVERS_SH}")
    subprocess.run(["bash", str(SERVERS_SH), "start"], check=True, timeout=900)
    printed = subprocess.run(["bash", str(SERVERS_SH), "env"], check=True, capture_output=True, text=True).stdout
    found = dict(w.split("=", 1) for line in printed.splitlines() for w in shlex.split(line)[1:] if "=" in w)
    return found.get("KAFKA_BOOTSTRAP_SERVERS", bootstrap), found.get("REDIS_URL", redis_url)


async def delete_keys(client: aioredis.Redis, prefix: str) -> None:
    """Unlink every key under ``prefix``, 5,000 a call."""
    batch: list[bytes] = []
    async for key in client.scan_iter(match=f"{prefix}*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            await client.unlink(*batch)
            batch.clear()
    if batch:
        await client.unlink(*batch)
