"""``shopstream evaluate --dataset impressions``: IPS on a simulated log recovers a strategy's known CTR, on each
surface of a log where every session is shown a session, a user and an item list."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from shopstream.cli import main
from shopstream.models.evaluation.loaders import load_jsonl
from shopstream.models.evaluation.logged import evaluate_logged, parse_target
from shopstream.producers.synthetic import ClickModel

#: Per surface, the hidden click quality of each strategy and the logging policy's shares: the targets below
#: were rarely served.
QUALITY = {
    "session": {"transitions": 0.06, "vsknn": 0.09, "trending": 0.04},
    "user": {"repeat_blend": 0.06, "session": 0.09, "trending": 0.03},
    "item": {"transitions": 0.05, "vsknn": 0.04, "trending": 0.09},
}
LOGGING = {
    "session": {"transitions": 0.6, "vsknn": 0.1, "trending": 0.3},
    "user": {"repeat_blend": 0.7, "session": 0.1, "trending": 0.2},
    "item": {"transitions": 0.5, "vsknn": 0.35, "trending": 0.15},
}
SESSIONS = 12_000
Clicks = dict[str, ClickModel]


def _write_log(path: Path) -> Clicks:
    """Every session is shown one list of each surface (distinct items, so no click is credited across them),
    each list's strategy drawn by the logging policy with its propensity in the payload."""
    clicks = {surface: ClickModel(quality, seed=5 + 10 * n, surface=surface) for n, (surface, quality) in
              enumerate(QUALITY.items())}
    pick = random.Random(6)
    with path.open("wb") as f:
        for i in range(SESSIONS):
            for surface, logging in LOGGING.items():
                strategy = pick.choices(list(logging), weights=list(logging.values()))[0]
                served = {"items": [f"{surface}{i}-{j}" for j in range(20)], "strategy": strategy,
                          "propensity": logging[strategy]}
                for event in clicks[surface].respond(f"s{i}", served, 1.7e9 + i, user_id=f"u{i % 500}"):
                    f.write(orjson.dumps(event) + b"\n")
    return clicks


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Clicks]:
    path = tmp_path_factory.mktemp("logs") / "impressions.jsonl"
    return path, _write_log(path)


@pytest.mark.parametrize(("surface", "target"), [
    ("session", "vsknn"), ("session", "transitions"), ("session", "vsknn=0.5,trending=0.5"),
    ("user", "session"), ("item", "trending"),
])
def test_ips_recovers_the_targets_ctr_within_its_interval(log: tuple[Path, Clicks], surface: str, target: str) -> None:
    path, clicks = log
    truth = sum(share * clicks[surface].ctr(name) for name, share in parse_target(target).items())
    result = evaluate_logged(load_jsonl(path, now=2e9), target, surface=surface)
    for name in ("ips", "snips"):
        assert result[name]["low"] <= truth <= result[name]["high"], (name, result[name], truth)
    rarest = min(LOGGING[surface], key=LOGGING[surface].__getitem__)
    assert result["logged"][rarest]["impressions"] == pytest.approx(LOGGING[surface][rarest] * SESSIONS * 5, rel=0.1)
    assert set(result["logged"]) == set(QUALITY[surface])  # the other surfaces' impressions are not mixed in


def test_the_command_prints_the_estimates(log: tuple[Path, Clicks], capsys: pytest.CaptureFixture[str]) -> None:
    path, clicks = log
    assert main(["evaluate", "--dataset", "impressions", "--path", str(path), "--target", "vsknn", "--json"]) == 0
    result = orjson.loads(capsys.readouterr().out)
    assert result["ips"]["low"] <= clicks["session"].ctr("vsknn") <= result["ips"]["high"]
    assert main(["evaluate", "--dataset", "impressions", "--path", str(path), "--surface", "item",
                 "--target", "trending", "--reward", "add_to_cart"]) == 0
    assert "target trending: add_to_cart per item impression" in capsys.readouterr().out
