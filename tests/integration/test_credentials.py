"""Kafka SASL and a Redis ACL user, end to end: the collector and the worker run with credentials only.

Kafka: a private broker whose only client listener is SASL_PLAINTEXT with PLAIN users (tests/servers.py). Redis:
an ACL user made for the test on the shared Redis, allowed only its own key prefix, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis
from aiokafka.errors import KafkaConnectionError, KafkaError

from shopstream.config.settings import CommonSettings
from shopstream.config.topics import ensure_pipeline_topics
from tests.pipeline import start_pipeline, stop_pipeline
from tests.servers import PrivateKafka, private_kafka_broker

pytestmark = pytest.mark.integration

SASL_PASSWORD = secrets.token_hex(12)
SASL_BROKER = """\
listeners=SASL_PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{port}
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
inter.broker.listener.name=SASL_PLAINTEXT
sasl.enabled.mechanisms=PLAIN
sasl.mechanism.inter.broker.protocol=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule \\
  required username="broker" password="broker-secret" user_broker="broker-secret" user_shop="%s";
""" % SASL_PASSWORD  # noqa: UP031 (the braces are the broker's placeholders)


@pytest.fixture(scope="module")
def sasl_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateKafka]:
    with private_kafka_broker(tmp_path_factory.mktemp("kafka-sasl"), SASL_BROKER) as broker:
        yield broker


@pytest.fixture
def acl_user(redis_url: str) -> Iterator[tuple[str, str, str]]:
    """(name, password, key prefix) of a Redis user that may touch only keys under its prefix."""
    name, password, prefix = f"test-{uuid.uuid4().hex[:10]}", secrets.token_hex(12), f"acl-{uuid.uuid4().hex[:10]}:"
    admin = redis.Redis.from_url(redis_url)
    admin.execute_command("ACL", "SETUSER", name, "on", f">{password}", "resetkeys", f"~{prefix}*", "resetchannels",
                          "-@all", "+@read", "+@write", "+@keyspace", "+@scripting", "+@connection")
    try:
        yield name, password, prefix
    finally:
        admin.execute_command("ACL", "DELUSER", name)
        admin.close()


def sasl_env(password: str = SASL_PASSWORD) -> dict[str, str]:
    return {"SHOPSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "SHOPSTREAM_KAFKA_SASL_MECHANISM": "PLAIN",
            "SHOPSTREAM_KAFKA_SASL_USERNAME": "shop", "SHOPSTREAM_KAFKA_SASL_PASSWORD": password}


def test_the_pipeline_runs_on_a_sasl_broker_and_an_acl_redis_user(
    sasl_kafka: PrivateKafka, acl_user: tuple[str, str, str], redis_url: str, tmp_path: Path
) -> None:
    name, password, prefix = acl_user
    user_url = redis_url.replace("redis://", f"redis://{name}:{password}@", 1)
    running = start_pipeline(sasl_kafka.bootstrap, user_url, tmp_path, SHOPSTREAM_KEY_PREFIX=prefix, **sasl_env())
    try:
        session = f"cred-{uuid.uuid4().hex[:8]}"
        events = [{"event_id": f"{session}-{i}", "ts": time.time(), "session_id": session, "type": "view",
                   "item_id": f"i{i}"} for i in range(3)]
        assert running.post(orjson.dumps(events)).json()["accepted"] == 3
        assert orjson.loads(running.wait_for_key(f"rec:session:{session}", timeout_s=60))["items"]
    finally:
        stop_pipeline(running)
    # The user is held to its prefix: a key outside it is refused.
    user = redis.Redis.from_url(user_url)
    try:
        with pytest.raises(redis.exceptions.NoPermissionError):
            user.set("outside-the-prefix", 1)
    finally:
        user.close()


@pytest.mark.parametrize("change", [{"SHOPSTREAM_KAFKA_SASL_PASSWORD": "wrong"},
                                    {"SHOPSTREAM_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}])
def test_a_client_without_the_right_credentials_gets_nowhere(
    sasl_kafka: PrivateKafka, change: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value in {**sasl_env(), **change, "KAFKA_BOOTSTRAP_SERVERS": sasl_kafka.bootstrap,
                            "SHOPSTREAM_EVENTS_TOPIC": f"test-{uuid.uuid4().hex[:8]}"}.items():
        monkeypatch.setenv(variable, value)

    async def create() -> None:
        await asyncio.wait_for(ensure_pipeline_topics(CommonSettings()), 30)

    with pytest.raises((KafkaError, KafkaConnectionError, TimeoutError)):
        asyncio.run(create())
