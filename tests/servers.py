"""Kafka and Redis for integration tests, found the same way on laptops, CI runners and Docker hosts.

Each server is looked up in this order:

1. ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` if set (CI service containers, a shared dev broker);
2. containers via testcontainers, if a Docker engine answers;
3. ``scripts/servers.sh start`` (local processes; no Docker needed), left running for the next session.

``SHOPSTREAM_TEST_SERVERS=docker|local`` forces step 2 or 3. A server that cannot be reached fails the tests
with the reason (``pytest.fail``): integration tests must run or fail, never be skipped.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import shutil
import socket
import subprocess
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest
import redis
from kafka.admin import KafkaAdminClient

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVERS_SH = REPO_ROOT / "scripts" / "servers.sh"
KAFKA_IMAGE = "apache/kafka:4.1.1"
REDIS_IMAGE = "redis:7"
# servers.sh may first have to install apt packages and download ~43 MB of Kafka jars.
LOCAL_START_TIMEOUT_S = 600
# Endpoints given by the environment may belong to services that are still booting (CI).
REACHABLE_TIMEOUT_S = 30.0


class ServerUnavailable(RuntimeError):
    """A test server could not be found or started; fixtures turn it into ``pytest.fail``."""


# --- discovery ------------------------------------------------------------------------------------------


@functools.cache
def docker_available(timeout_s: float = 5.0) -> bool:
    """True if a Docker engine answers: a docker CLI without an engine (as on some dev machines) is not enough."""
    if shutil.which("docker") is None:
        return False
    try:
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return False
    return probe.returncode == 0


def _mode() -> str:
    mode = os.environ.get("SHOPSTREAM_TEST_SERVERS", "auto")
    if mode not in {"auto", "docker", "local"}:
        raise ServerUnavailable(f"SHOPSTREAM_TEST_SERVERS={mode!r}: expected auto, docker or local")
    if mode == "auto":
        return "docker" if docker_available() else "local"
    return mode


def local_servers(*names: str) -> dict[str, str]:
    """Start ``names`` with scripts/servers.sh (a no-op if they answer already) and return its ``env`` output."""

    def run(*args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
        # Through bash, so a checkout that lost the executable bit still works.
        cmd = ["bash", str(SERVERS_SH), *args]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ServerUnavailable(f"`{shlex.join(cmd)}` did not finish within {timeout_s:.0f}s") from exc

    started = run("start", *names, timeout_s=LOCAL_START_TIMEOUT_S)
    if started.returncode != 0:
        raise ServerUnavailable(
            f"`scripts/servers.sh start {' '.join(names)}` failed with exit code {started.returncode}:\n"
            f"{started.stderr.strip()[-4000:]}"
        )
    printed = run("env", timeout_s=30).stdout
    settings: dict[str, str] = {}
    for line in printed.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, value = words[1].split("=", 1)
            settings[key] = value
    return settings


def wait_for_tcp(host: str, port: int, timeout_s: float = REACHABLE_TIMEOUT_S) -> None:
    """Wait until ``host:port`` accepts TCP connections, so a wrong address fails fast with a clear message."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=2):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise ServerUnavailable(f"nothing answers on {host}:{port} after {timeout_s:.0f}s: {exc}") from exc
            time.sleep(0.2)


def wait_for_redis(url: str, timeout_s: float = REACHABLE_TIMEOUT_S) -> None:
    """Wait until Redis at ``url`` answers PING."""
    deadline = time.monotonic() + timeout_s
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        while True:
            try:
                client.ping()
                return
            except redis.RedisError as exc:
                if time.monotonic() >= deadline:
                    raise ServerUnavailable(f"Redis at {url} does not answer PING: {exc}") from exc
                time.sleep(0.2)
    finally:
        client.close()


def _first_host_port(bootstrap: str) -> tuple[str, int]:
    """Split the first ``host:port`` of a bootstrap list.

    >>> _first_host_port("PLAINTEXT://[::1]:9092,b:9093")
    ('::1', 9092)
    """
    first = bootstrap.split(",")[0].strip().rsplit("://", 1)[-1]
    host, _, port = first.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


# --- Docker ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def kafka_container() -> Iterator[str]:
    """A KRaft Kafka in ``apache/kafka`` (the image the compose stack uses); yields the bootstrap address.

    testcontainers' own ``KafkaContainer`` drives Confluent's cp-kafka start scripts and rejects apache/kafka
    tags in KRaft mode, hence a plain container. The advertised listener needs the mapped host port, known only
    once the container runs, so the broker's start waits for a file with it (as ``KafkaContainer`` does).
    """
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    listeners_file = "/tmp/advertised-listeners"
    container = (
        DockerContainer(KAFKA_IMAGE)
        .with_exposed_ports(9092)
        .with_envs(
            CLUSTER_ID="c2hvcHN0cmVhbS10ZXN0cw",
            KAFKA_NODE_ID="1",
            KAFKA_PROCESS_ROLES="broker,controller",
            KAFKA_LISTENERS="PLAINTEXT://:9092,BROKER://:19092,CONTROLLER://:9093",
            KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
            KAFKA_INTER_BROKER_LISTENER_NAME="BROKER",
            KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
            KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9093",
            KAFKA_NUM_PARTITIONS="4",
            KAFKA_AUTO_CREATE_TOPICS_ENABLE="true",
            KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
            KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
            KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR="1",
        )
        .with_command(
            [
                "sh",
                "-c",
                f"while [ ! -s {listeners_file} ]; do sleep 0.1; done; "
                f'export KAFKA_ADVERTISED_LISTENERS="$(cat {listeners_file})"; exec /etc/kafka/docker/run',
            ]
        )
    )
    with container:
        bootstrap = f"{container.get_container_host_ip()}:{container.get_exposed_port(9092)}"
        listeners = f"PLAINTEXT://{bootstrap},BROKER://localhost:19092"
        written = container.exec(
            ["sh", "-c", f"printf %s '{listeners}' > {listeners_file}.tmp && mv {listeners_file}.tmp {listeners_file}"]
        )
        if written.exit_code != 0:
            raise ServerUnavailable(f"could not configure the Kafka container: {written.output!r}")
        LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(180).wait_until_ready(container)
        yield bootstrap


@contextlib.contextmanager
def redis_container() -> Iterator[str]:
    """A ``redis:7`` container; yields its URL."""
    from testcontainers.community.redis import RedisContainer

    with RedisContainer(REDIS_IMAGE) as container:
        yield f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"


# --- endpoints --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def kafka_endpoint() -> Iterator[str]:
    """Yield a reachable Kafka bootstrap address (see the module docstring for the order)."""
    if bootstrap := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        wait_for_tcp(*_first_host_port(bootstrap))
        yield bootstrap
    elif _mode() == "docker":
        with kafka_container() as bootstrap:
            yield bootstrap
    else:
        bootstrap = local_servers("kafka").get("KAFKA_BOOTSTRAP_SERVERS", "")
        if not bootstrap:
            raise ServerUnavailable("`scripts/servers.sh env` printed no KAFKA_BOOTSTRAP_SERVERS")
        wait_for_tcp(*_first_host_port(bootstrap))
        yield bootstrap


@contextlib.contextmanager
def redis_endpoint() -> Iterator[str]:
    """Yield a Redis URL that answers PING (see the module docstring for the order)."""
    if url := os.environ.get("REDIS_URL"):
        wait_for_redis(url)
        yield url
    elif _mode() == "docker":
        with redis_container() as url:
            yield url
    else:
        url = local_servers("redis").get("REDIS_URL", "")
        if not url:
            raise ServerUnavailable("`scripts/servers.sh env` printed no REDIS_URL")
        wait_for_redis(url)
        yield url


@contextlib.contextmanager
def redis_cluster_endpoint() -> Iterator[str]:
    """Yield the URL of one node of a three-master Redis Cluster whose slots are all served:
    ``REDIS_CLUSTER_URL`` if set, else ``scripts/servers.sh start redis-cluster`` (Docker or not)."""
    url = os.environ.get("REDIS_CLUSTER_URL") or local_servers("redis-cluster").get("REDIS_CLUSTER_URL", "")
    if not url:
        raise ServerUnavailable("`scripts/servers.sh env` printed no REDIS_CLUSTER_URL")
    wait_for_redis(url)
    yield url


def _reasons(exc: BaseException) -> str:
    """One line per exception in the chain: the reasons, without the (long, docker SDK) tracebacks."""
    lines: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(lines) < 6:
        lines.append("".join(traceback.format_exception_only(current)).strip())
        current = current.__cause__ or current.__context__
    return "\n  caused by: ".join(lines)


@contextlib.contextmanager
def _fail_unless_started(what: str, endpoint: contextlib.AbstractContextManager[str]) -> Iterator[str]:
    """Enter ``endpoint``, turning a failure to start it (not later test failures) into ``pytest.fail``."""
    with contextlib.ExitStack() as stack:
        try:
            value = stack.enter_context(endpoint)
        except ServerUnavailable as exc:
            reason = str(exc)
        except Exception as exc:  # e.g. a container that did not start: same outcome
            reason = f"{_reasons(exc)}\n(SHOPSTREAM_TEST_SERVERS=local uses scripts/servers.sh instead of Docker)"
        else:
            yield value
            return
    # Outside the except blocks, so pytest does not print the whole exception chain again.
    pytest.fail(f"{what} for the integration tests is unavailable: {reason}", pytrace=False)


# --- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port`` of a Kafka 4.1 broker (KRaft, 4 partitions per auto-created topic) for this session."""
    with _fail_unless_started("Kafka", kafka_endpoint()) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``redis://host:port/db`` of a Redis 7 for this session; shared, so use ``key_prefix`` for keys."""
    with _fail_unless_started("Redis", redis_endpoint()) as url:
        yield url


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """``redis://host:port/0`` of one node of a three-master Redis Cluster for this session."""
    with _fail_unless_started("Redis Cluster", redis_cluster_endpoint()) as url:
        yield url


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """A Redis deployment the sinks and readers must work on: ``mode`` is ``SHOPSTREAM_REDIS_MODE``."""

    mode: str
    url: str
    client: redis.Redis | redis.RedisCluster


@pytest.fixture(params=["single", "cluster"])
def redis_target(request: pytest.FixtureRequest, key_prefix: str) -> Iterator[RedisTarget]:
    """Each test runs against a single Redis node and against a Redis Cluster; the test's keys are deleted after."""
    mode = request.param
    url = request.getfixturevalue("redis_url" if mode == "single" else "redis_cluster_url")
    client = redis.Redis.from_url(url) if mode == "single" else redis.RedisCluster.from_url(url)
    try:
        yield RedisTarget(mode, url, client)
    finally:
        for key in list(client.scan_iter(match=f"{key_prefix}*", count=1000)):
            client.delete(key)
        client.close()


@pytest.fixture
def key_prefix() -> str:
    """A per-test Redis key prefix (``test-<uuid>:``) so tests never see each other's keys or flush shared data."""
    return f"test-{uuid.uuid4().hex}:"


@pytest.fixture
def redis_client(redis_url: str, key_prefix: str) -> Iterator[redis.Redis]:
    """A ``redis.Redis`` on ``redis_url``; deletes the test's ``key_prefix`` keys afterwards, nothing else."""
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        stale = list(client.scan_iter(match=f"{key_prefix}*", count=1000))
        if stale:
            client.delete(*stale)
        client.close()


@pytest.fixture
def topic_prefix() -> str:
    """A per-test topic name prefix (``test-<uuid>-``), for tests that need several topics."""
    return f"test-{uuid.uuid4().hex}-"


@pytest.fixture
def unique_topic(topic_prefix: str) -> str:
    """A topic name no other test uses; not created (auto-creation gives it 4 partitions on first use)."""
    return f"{topic_prefix}topic"


class TopicFactory(Protocol):
    """Signature of the ``new_topic`` fixture."""

    def __call__(self, name: str | None = None, partitions: int = 4) -> str: ...


def create_topics(bootstrap: str, names: list[str], partitions: int = 4) -> None:
    """Create topics and wait until every partition has a leader, so producing right after cannot race."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="shopstream-tests")
    try:
        admin.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": 1} for name in names},
            wait_for_metadata=True,
        )
    finally:
        admin.close()


def delete_topics(bootstrap: str, names: list[str]) -> None:
    """Delete topics, ignoring ones already gone, so a long-lived dev broker does not fill with test topics."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="shopstream-tests")
    try:
        admin.delete_topics(names, raise_errors=False)
    finally:
        admin.close()


@pytest.fixture
def new_topic(kafka_bootstrap: str, topic_prefix: str) -> Iterator[TopicFactory]:
    """Factory creating ready topics (default: ``<topic_prefix>topic``, 4 partitions); deleted after the test."""
    created: list[str] = []

    def make(name: str | None = None, partitions: int = 4) -> str:
        full_name = f"{topic_prefix}{name or 'topic'}"
        create_topics(kafka_bootstrap, [full_name], partitions)
        created.append(full_name)
        return full_name

    yield make
    if created:
        delete_topics(kafka_bootstrap, created)


# --- a private broker, for tests that stop one -------------------------------------------------------------


@dataclass
class PrivateKafka:
    """A KRaft broker of this test's own (scripts/servers.sh on free ports with its own state dir), so a test
    can stop and restart it without touching the shared one; its data survive a restart."""

    port: int
    env: dict[str, str]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self, command: str) -> None:
        done = subprocess.run(["bash", str(SERVERS_SH), command, "kafka"], env=self.env, capture_output=True,
                              text=True, timeout=LOCAL_START_TIMEOUT_S, check=False)
        if done.returncode != 0:
            raise ServerUnavailable(f"servers.sh {command} kafka on port {self.port}: {done.stderr[-3000:]}")

    def start(self) -> None:
        """Start it and wait until it serves (``Kafka Server started`` and the port answers)."""
        self._run("start")

    def stop(self) -> None:
        """SIGTERM to its pid and wait until it exited."""
        self._run("stop")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def private_kafka_broker(state_dir: Path, extra_properties: str = "") -> Iterator[PrivateKafka]:
    """Start a private broker (``extra_properties``: broker properties with ``{port}`` and ``{controller_port}``
    placeholders, appended to servers.sh's) and stop it on exit; pytest.fail if it does not start."""
    port, controller_port = _free_port(), _free_port()
    env = {**os.environ, "SHOPSTREAM_KAFKA_PORT": str(port), "SHOPSTREAM_KAFKA_CONTROLLER_PORT": str(controller_port),
           "SHOPSTREAM_STATE": str(state_dir), "SHOPSTREAM_KAFKA_HEAP": "384m"}
    if extra_properties:
        path = state_dir / "extra.properties"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(extra_properties.format(port=port, controller_port=controller_port))
        env["SHOPSTREAM_KAFKA_EXTRA_PROPERTIES"] = str(path)
    broker = PrivateKafka(port, env)
    with _fail_unless_started("a private Kafka broker", _started(broker)):
        try:
            yield broker
        finally:
            broker.stop()


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[PrivateKafka]:
    """A started private broker, stopped (its state dir goes with ``tmp_path``) after the test."""
    with private_kafka_broker(tmp_path / "kafka-state") as broker:
        yield broker


@contextlib.contextmanager
def _started(broker: PrivateKafka) -> Iterator[str]:
    broker.start()
    yield broker.bootstrap
