"""``shopstream evaluate --dataset impressions``: IPS on a simulated log recovers a strategy's known CTR."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from shopstream.cli import main
from shopstream.models.evaluation.loaders import load_jsonl
from shopstream.models.evaluation.logged import evaluate_logged, parse_target
from shopstream.producers.synthetic import ClickModel

QUALITY = {"transitions": 0.06, "vsknn": 0.09, "trending": 0.04}
LOGGING = {"transitions": 0.6, "vsknn": 0.1, "trending": 0.3}  # the target was rarely served


def _write_log(path: Path, sessions: int = 12_000) -> ClickModel:
    clicks = ClickModel(QUALITY, seed=5)
    pick = random.Random(6)
    with path.open("wb") as f:
        for i in range(sessions):
            strategy = pick.choices(list(LOGGING), weights=list(LOGGING.values()))[0]
            served = {"items": [f"i{i}-{j}" for j in range(20)], "strategy": strategy,
                      "propensity": LOGGING[strategy]}
            for event in clicks.respond(f"s{i}", served, 1.7e9 + i):
                f.write(orjson.dumps(event) + b"\n")
    return clicks


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ClickModel]:
    path = tmp_path_factory.mktemp("logs") / "impressions.jsonl"
    return path, _write_log(path)


@pytest.mark.parametrize("target", ["vsknn", "transitions", "vsknn=0.5,trending=0.5"])
def test_ips_recovers_the_targets_ctr_within_its_interval(log: tuple[Path, ClickModel], target: str) -> None:
    path, clicks = log
    truth = sum(share * clicks.ctr(name) for name, share in parse_target(target).items())
    result = evaluate_logged(load_jsonl(path, now=2e9), target)
    for name in ("ips", "snips"):
        assert result[name]["low"] <= truth <= result[name]["high"], (name, result[name], truth)
    assert result["logged"]["vsknn"]["impressions"] == pytest.approx(0.1 * 12_000 * 5, rel=0.1)


def test_the_command_prints_the_estimates(log: tuple[Path, ClickModel], capsys: pytest.CaptureFixture[str]) -> None:
    path, clicks = log
    assert main(["evaluate", "--dataset", "impressions", "--path", str(path), "--target", "vsknn", "--json"]) == 0
    result = orjson.loads(capsys.readouterr().out)
    assert result["ips"]["low"] <= clicks.ctr("vsknn") <= result["ips"]["high"]
    assert main(["evaluate", "--dataset", "impressions", "--path", str(path), "--reward", "add_to_cart"]) == 0
    assert "add_to_cart per session impression" in capsys.readouterr().out
