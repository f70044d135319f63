"""The list contract is the only copy: the engine builds every kind, the settings name every TTL and refresh
interval it points at, and docs/redis-keys.md shows exactly what it declares."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from shopstream.config.settings import CollectorSettings, WorkerSettings
from shopstream.contracts.lists import BY_NAME, LISTS, key_table
from shopstream.models.engine import RecommenderStack
from shopstream.models.stack_config import StackConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "redis-keys.md"


def test_the_key_page_shows_the_contract() -> None:
    defaults = {name: field.default for name, field in WorkerSettings.model_fields.items()}
    assert key_table(defaults) in DOC.read_text(encoding="utf-8")


def test_every_setting_the_contract_names_exists() -> None:
    for spec in LISTS:
        assert spec.ttl_setting in WorkerSettings.model_fields
        assert spec.refresh_setting is None or spec.refresh_setting in {f.name for f in fields(StackConfig)}


def test_kinds_have_unique_names_and_keys() -> None:
    assert len(BY_NAME) == len(LISTS)
    assert len({spec.key_template for spec in LISTS}) == len(LISTS)
    assert all(re.fullmatch(r"[a-z:_]*(\{[a-z_]+\})?", spec.key_template) for spec in LISTS)


def test_the_engine_builds_every_kind_and_refuses_an_unknown_one(monkeypatch: pytest.MonkeyPatch) -> None:
    RecommenderStack()
    monkeypatch.setitem(BY_NAME, "new_kind", LISTS[0])  # type: ignore[index]
    with pytest.raises(TypeError, match="new_kind"):
        RecommenderStack()


def test_the_stack_defaults_live_in_one_place() -> None:
    """Every StackConfig field is a worker setting with the same default, and the settings build it."""
    for field in fields(StackConfig):
        assert WorkerSettings.model_fields[field.name].default == field.default, field.name
    assert WorkerSettings().stack_config() == StackConfig()
    assert WorkerSettings(item_refresh_s=9.0).stack_config().item_refresh_s == 9.0


def test_every_setting_is_documented() -> None:
    page = (DOC.parent / "configuration.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"SHOPSTREAM_[A-Z_]+", page)) | {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL"}
    # Grouped rows name the first variable in full and the others by their suffix (`_USER_S`).
    suffixes = set(re.findall(r"`(_[A-Z_]+)`", page))
    for cls in (WorkerSettings, CollectorSettings):
        for name in cls.model_fields:
            env = f"SHOPSTREAM_{name.upper()}"
            assert env in documented or name.upper() in documented or any(
                env.endswith(suffix) for suffix in suffixes), env


def test_a_back_end_reads_lists_without_the_worker() -> None:
    """The client and the contract load neither models, Faust, Kafka clients nor NumPy."""
    import subprocess
    import sys

    code = ("import sys, shopstream.client.reader; "
            "heavy = {'numpy', 'river', 'faust', 'aiokafka', 'msgspec'}; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & heavy), "
            "sorted(m for m in sys.modules if m.startswith('shopstream.') and not m.startswith("
            "('shopstream.client', 'shopstream.contracts'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[] []"
