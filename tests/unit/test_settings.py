"""Kafka and Redis credentials through the settings: validated, passed to every client, never printed."""

from __future__ import annotations

import ssl

import faust
import pytest

from shopstream.config.settings import CollectorSettings, WorkerSettings, load
from shopstream.streams.worker import broker_credentials

SASL = {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "shop", "kafka_sasl_password": "hunter2-hunter2"}


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    assert CollectorSettings().kafka_security_options() == {"security_protocol": "PLAINTEXT"}
    assert broker_credentials(WorkerSettings()) is None


def test_sasl_reaches_aiokafka_and_faust() -> None:
    options = CollectorSettings(**SASL).kafka_security_options()  # type: ignore[arg-type]
    assert isinstance(options.pop("ssl_context"), ssl.SSLContext)
    assert options == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                       "sasl_plain_username": "shop", "sasl_plain_password": "hunter2-hunter2"}
    credentials = broker_credentials(WorkerSettings(**SASL))  # type: ignore[arg-type]
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.protocol.value, credentials.mechanism.value) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (credentials.username, credentials.password) == ("shop", "hunter2-hunter2")
    assert isinstance(broker_credentials(WorkerSettings(kafka_security_protocol="SSL")), faust.SSLCredentials)


def test_a_sasl_protocol_needs_a_user_and_no_message_shows_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPSTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("SHOPSTREAM_KAFKA_SASL_PASSWORD", "hunter2-hunter2")
    with pytest.raises(SystemExit) as missing_user:
        load(CollectorSettings)
    assert "SHOPSTREAM_KAFKA_SASL_USERNAME" in str(missing_user.value)
    assert "hunter2" not in str(missing_user.value)
    monkeypatch.setenv("SHOPSTREAM_KAFKA_SASL_USERNAME", "shop")
    settings = load(CollectorSettings)
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)
