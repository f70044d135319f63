"""Configuration from environment variables, validated once at start-up.

Every component reads the same few connection settings, so they are declared once here; each
value has a documented default (see docs/configuration.md) and a bad value stops the process with
a message naming the variable, instead of failing later in the hot path.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import tempfile
from dataclasses import fields
from typing import Any, Literal, TypeVar

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from shopstream.contracts.lists import LISTS
from shopstream.models.events import DEFAULT_LIMITS, EventLimits
from shopstream.models.stack_config import (
    SURFACE_ARMS,
    ExperimentName,
    RewardName,
    SessionModelName,
    StackConfig,
)

S = TypeVar("S", bound=BaseSettings)
_STACK = StackConfig()


def _env(name: str) -> AliasChoices:
    """Accept the conventional bare name (``REDIS_URL``) as well as the prefixed one."""
    return AliasChoices(name, f"SHOPSTREAM_{name}")


class CommonSettings(BaseSettings):
    """Where Kafka and Redis are and what the topics are called."""

    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_", frozen=True, extra="ignore")

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS"))
    # Kafka credentials (docs/security.md); Redis takes an ACL user in REDIS_URL (redis://user:password@host).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_ssl_cafile: str = ""  # CA bundle for SSL and SASL_SSL; empty: the system's
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias=_env("REDIS_URL"))
    events_topic: str = Field("clickstream.events", min_length=1)
    dlq_topic: str = Field("clickstream.dlq", min_length=1)
    topic_partitions: int = Field(8, ge=1, le=1024)
    key_prefix: str = ""
    log_level: str = Field("info", pattern="^(crit|error|warn|info|debug)$")
    # Event value bounds (docs/events.md); the collector and the worker must agree on them.
    max_future_skew_s: float = Field(DEFAULT_LIMITS.max_future_skew_s, ge=0, le=86400)
    max_price: float = Field(DEFAULT_LIMITS.max_price, gt=0, le=1e15)
    max_quantity: int = Field(DEFAULT_LIMITS.max_quantity, ge=1, le=10**9)

    def event_limits(self) -> EventLimits:
        return EventLimits(self.max_future_skew_s, self.max_price, self.max_quantity)

    @model_validator(mode="after")
    def _sasl_needs_a_user(self) -> CommonSettings:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()
        ):
            raise ValueError("SHOPSTREAM_KAFKA_SECURITY_PROTOCOL=SASL_* needs SHOPSTREAM_KAFKA_SASL_USERNAME and "
                             "SHOPSTREAM_KAFKA_SASL_PASSWORD")
        return self

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of SSL and SASL_SSL (the CA bundle's, or the system's), else None."""
        if not self.kafka_security_protocol.endswith("SSL"):
            return None
        return ssl.create_default_context(cafile=self.kafka_ssl_cafile or None)

    def kafka_security_options(self) -> dict[str, Any]:
        """The aiokafka client options (producer, admin) of the protocol, TLS and SASL settings."""
        options: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if (context := self.kafka_ssl_context()) is not None:
            options["ssl_context"] = context
        if self.kafka_security_protocol.startswith("SASL"):
            options |= {"sasl_mechanism": self.kafka_sasl_mechanism, "sasl_plain_username": self.kafka_sasl_username,
                        "sasl_plain_password": self.kafka_sasl_password.get_secret_value()}
        return options


class WorkerSettings(CommonSettings):
    """The stream worker: batching, serving and model capacity."""

    app_id: str = Field("shopstream-worker", min_length=1)
    data_dir: str = Field(os.path.join(tempfile.gettempdir(), "shopstream-worker"), min_length=1)
    web_host: str = "0.0.0.0"
    web_port: int = Field(6066, ge=1, le=65535)
    batch_max_records: int = Field(200, ge=1, le=100_000)
    batch_within_s: float = Field(0.02, gt=0, le=10)
    batch_step_events: int = Field(40_000, ge=1, le=1_000_000)
    # When the deferred tier (every list but the session lists) runs: streams/batch.py DeferredPolicy.
    deferred_max_events: int = Field(5000, ge=1, le=1_000_000)
    deferred_max_delay_s: float = Field(0.5, ge=0, le=60)
    ttl_session_s: int = Field(2 * 3600, ge=1)
    ttl_user_s: int = Field(30 * 86400, ge=1)
    ttl_item_s: int = Field(7 * 86400, ge=1)
    ttl_trending_s: int = Field(86400, ge=1)
    redis_mode: Literal["single", "cluster"] = "single"
    # Who this worker is across restarts: its checkpoints are found under this id (docs/operations.md).
    worker_id: str = Field(default_factory=socket.gethostname, pattern=r"^[A-Za-z0-9._-]{1,200}$")
    checkpoint_topic: str = Field("shopstream.checkpoints", min_length=1)
    checkpoint_interval_s: float = Field(10.0, ge=0)  # 0: no checkpoints (every restart is cold)
    # Stopping, failover and Redis repair (docs/design.md "Bounded shutdown and failover").
    shutdown_timeout_s: float = Field(8.0, gt=0, le=3600)
    session_timeout_s: float = Field(10.0, ge=1, le=1800)
    static_membership: bool = False  # group.instance.id = worker_id (docs/design.md "Bounded shutdown and failover")
    republish_rate: float = Field(5000.0, gt=0)
    # The model stack (models/stack_config.py holds the defaults).
    top_k: int = Field(_STACK.top_k, ge=1, le=500)
    max_sessions: int = Field(_STACK.max_sessions, ge=1)
    max_users: int = Field(_STACK.max_users, ge=1)
    max_items: int = Field(_STACK.max_items, ge=1)
    dedupe_window: int = Field(_STACK.dedupe_window, ge=1)
    session_ttl_s: float = Field(_STACK.session_ttl_s, gt=0)
    trending_half_life_s: float = Field(_STACK.trending_half_life_s, gt=0)
    session_model: SessionModelName = _STACK.session_model
    mf_negatives: int = Field(_STACK.mf_negatives, ge=0, le=20)
    forecast_window_s: float = Field(_STACK.forecast_window_s, gt=0)
    forecast_horizon: int = Field(_STACK.forecast_horizon, ge=1, le=365)
    forecast_lateness_s: float = Field(_STACK.forecast_lateness_s, ge=0)
    item_refresh_s: float = Field(_STACK.item_refresh_s, ge=0)
    user_refresh_s: float = Field(_STACK.user_refresh_s, ge=0)
    trending_refresh_s: float = Field(_STACK.trending_refresh_s, ge=0)
    seed: int = _STACK.seed
    experiment: ExperimentName = _STACK.experiment
    experiment_arms: str = _STACK.experiment_arms
    experiment_user_arms: str = _STACK.experiment_user_arms
    experiment_item_arms: str = _STACK.experiment_item_arms
    experiment_floor: float = Field(_STACK.experiment_floor, ge=0, le=1)
    experiment_reward: RewardName = _STACK.experiment_reward
    attribution_window_s: float = Field(_STACK.attribution_window_s, gt=0)
    hit_rate_sample: float = Field(_STACK.hit_rate_sample, ge=0, le=1)

    @field_validator("experiment_arms", "experiment_user_arms", "experiment_item_arms")
    @classmethod
    def _known_arms(cls, value: str, info: ValidationInfo) -> str:
        surface, (_, known) = next((s, spec) for s, spec in SURFACE_ARMS.items() if spec[0] == info.field_name)
        arms = StackConfig(**{info.field_name: value}).arms(surface)
        if not arms or len(set(arms)) != len(arms) or not set(arms) <= set(known):
            raise ValueError(f"distinct names from {known}, comma-separated")
        return value

    def stack_config(self) -> StackConfig:
        """The model stack's configuration: every :class:`StackConfig` field is a setting of the same name."""
        return StackConfig(**{f.name: getattr(self, f.name) for f in fields(StackConfig)})

    def heartbeat_interval_s(self) -> float:
        """A third of the session timeout, as Kafka advises, so two heartbeats may be lost before it expires."""
        return self.session_timeout_s / 3

    def ttl_s(self) -> dict[str, int]:
        """Seconds to live of each kind of list, from the setting the contract names for it."""
        return {spec.name: getattr(self, spec.ttl_setting) for spec in LISTS}


class CollectorSettings(CommonSettings):
    """The HTTP collector trackers post to; who may send and how much (docs/security.md)."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    metrics_port: int = Field(0, ge=0, le=65535)  # 0: /metrics on ``port``
    max_body_bytes: int = Field(262_144, ge=1024, le=4_194_304)
    max_events_per_request: int = Field(500, ge=1, le=10_000)
    read_timeout_s: float = Field(10.0, gt=0, le=300)
    write_keys: str = ""
    write_keys_file: str = ""
    allow_anonymous: bool = False
    cors_origins: str = ""  # empty: the write keys' origins
    rate_limit_per_key: float = Field(1000.0, ge=0)  # requests/s; 0: unlimited
    rate_limit_per_address: float = Field(20.0, ge=0)
    rate_limit_burst_s: float = Field(2.0, gt=0, le=60)  # a bucket holds this many seconds of its rate
    max_events_per_record: int = Field(200, ge=1)
    publish_linger_s: float = Field(0.002, ge=0, le=1)
    publish_timeout_s: float = Field(5.0, gt=0, le=60)

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcards(cls, value: str) -> str:
        if {"*", "null"} & {origin.strip() for origin in value.split(",")}:
            raise ValueError("list the allowed origins; '*' and 'null' would allow any page to send")
        return value


def load(cls: type[S], **overrides: object) -> S:
    """Build settings from the environment (``overrides`` win) or exit with one line per bad variable."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        lines = [f"invalid configuration for {cls.__name__}:"]
        for err in exc.errors():
            if not err["loc"]:  # a check across settings: its input is every setting, secrets included
                lines.append(f"  {err['msg']}")
                continue
            name = "SHOPSTREAM_" + "_".join(str(p) for p in err["loc"]).upper()
            shown = "<hidden>" if "password" in name.lower() else repr(err.get("input"))
            lines.append(f"  {name}={shown}: {err['msg']}")
        sys.exit("\n".join(lines))
