"""Evaluation harness on tiny synthetic data: metric arithmetic, protocol case counts, every loader."""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import orjson
import pytest

from shopstream.cli.evaluate import add_parser, forecast_results
from shopstream.models.evaluation import format_table, run_evaluation
from shopstream.models.evaluation.baselines import Popularity, RecentPopularity
from shopstream.models.evaluation.loaders import (
    is_test,
    load_jsonl,
    load_online_retail,
    load_retailrocket,
    load_yoochoose,
)
from shopstream.models.evaluation.metrics import RankingScores
from shopstream.models.evaluation.session_protocol import evaluate_sessions, prepare
from shopstream.models.evaluation.user_protocol import evaluate_users
from shopstream.models.events import Event
from shopstream.models.session_knn import SessionKNN


def test_metrics_hit_rank_recall_and_coverage() -> None:
    scores = RankingScores(ks=(2, 20))
    scores.add(["a", "b", "c"], {"c"})  # rank 3: a hit at 20 only
    scores.add(["x", "a"], {"a", "q", "r", "s"})  # rank 2, 1 of 4 targets
    scores.add([], {"a"})  # nothing served: a miss, still a case
    out = scores.summary(catalogue_size=8)
    assert out["cases"] == 3
    assert out["hr@2"] == pytest.approx(1 / 3) and out["hr@20"] == pytest.approx(2 / 3)
    assert out["mrr@2"] == pytest.approx(0.5 / 3) and out["mrr@20"] == pytest.approx((1 / 3 + 1 / 2) / 3)
    assert out["recall@20"] == pytest.approx((1 + 0.25) / 3)
    assert out["coverage"] == pytest.approx(4 / 8)


def test_metrics_reject_empty_targets_and_bad_k() -> None:
    with pytest.raises(ValueError):
        RankingScores(ks=(0,))
    with pytest.raises(ValueError):
        RankingScores().add(["a"], set())


def _yoochoose(folder: Path) -> Path:
    header = "SessionId\tItemId\tTime\n"
    train = [(1, "a", 10), (1, "b", 11), (2, "b", 12), (2, "c", 13), (3, "a", 5)]
    # test: session 7 loses its unseen item "z" and keeps 3 events -> 2 cases; session 8 drops to one event.
    test = [(7, "a", 20), (7, "z", 21), (7, "b", 22), (7, "b", 23), (8, "c", 24), (8, "z", 25)]
    for name, rows in (("t_train_full.txt", train), ("t_test.txt", test)):
        (folder / name).write_text(header + "".join(f"{s}\t{i}\t{ts}\n" for s, i, ts in rows))
    return folder


def test_yoochoose_loader_orders_train_then_test(tmp_path: Path) -> None:
    events = list(load_yoochoose(_yoochoose(tmp_path)))
    assert [e.ts for e in events][:5] == [5, 10, 11, 12, 13]
    assert [is_test(e) for e in events] == [False] * 5 + [True] * 6


def test_session_protocol_filters_and_counts_cases(tmp_path: Path) -> None:
    train, test, catalogue = prepare(load_yoochoose(_yoochoose(tmp_path)))
    assert len(train) == 5 and catalogue == {"a", "b", "c"}
    assert [(e.session_id, e.item_id) for e in test] == [("7", "a"), ("7", "b"), ("7", "b")]
    result = evaluate_sessions(load_yoochoose(tmp_path), {"knn": SessionKNN, "pop": Popularity}, ks=(1, 2))
    assert result["knn"]["cases"] == result["pop"]["cases"] == 2
    # After [a], neighbours 1 (a b) and 3 (a) rank the repeat "a" over "b"; after [a b], "b" leads.
    assert result["knn"]["hr@1"] == 0.5 and result["knn"]["hr@2"] == 1.0
    assert result["pop"]["hr@2"] == 1.0 and result["pop"]["events"] == 8


def test_session_protocol_without_split_scores_every_later_click() -> None:
    clicks = [("s1", "a"), ("s1", "b"), ("s2", "a"), ("s1", "c"), ("s3", "a")]
    stream = [Event(f"e{n}", 1e9 + n, s, "view", i) for n, (s, i) in enumerate(clicks)]
    assert evaluate_sessions(stream, {"pop": Popularity})["pop"]["cases"] == 2


def test_user_protocol_predicts_before_learning_and_counts_known_customers() -> None:
    buys = [
        (1, "u1", "a"), (1, "u1", "b"), (2, "u2", "a"),  # train
        (10, "u1", "c"), (10, "u1", "a"),  # test invoice of a known customer
        (11, "u1", "c"),  # same-day follow-up: "c" was just learned, so it can be hit
        (12, "u9", "a"),  # unknown customer: not a case
    ]  # fmt: skip
    stream = [Event(f"e{n}", ts, f"{u}@{ts}", "purchase", i, user_id=u) for n, (ts, u, i) in enumerate(buys)]
    out = evaluate_users(stream, {"pop": Popularity}, test_start=10, ks=(1, 20))["pop"]
    assert out["cases"] == 2
    assert out["hr@1"] == 0.5  # "a" leads at t=10 (hit); at t=11 "a" (3) still beats "c" (1)
    assert out["recall@20"] == pytest.approx((1 / 2 + 1) / 2)  # "c" was unknown at t=10


def test_recent_popularity_forgets_outside_its_window() -> None:
    pop = RecentPopularity(window_s=5)
    for n, item in enumerate(["a", "a", "b"]):
        pop.learn_one(Event(f"e{n}", n, "s", "view", item))
    pop.learn_one(Event("late", 5, "s", "view", "b"))  # the "a" at t=0 leaves the window
    assert pop.top(5) == [("b", 2.0), ("a", 1.0)]
    pop.learn_one(Event("imp", 5, "s", "impression", "a"))  # exposure, not interest
    assert pop.top(5) == [("b", 2.0), ("a", 1.0)]


def test_online_retail_loader_applies_the_cleaning(tmp_path: Path) -> None:
    lines = [
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country",
        "1,85123A ,X,6,2010-12-01 08:26:00,2.55,17850.0,UK",
        "1,85123A,X,2,2010-12-01 08:26:00,2.55,17850,UK",  # same (customer, item, time): merged
        "C2,85123A,X,-1,2010-12-01 09:00:00,2.55,17850,UK",  # cancellation
        "3,22222,X,1,2010-12-01 09:00:00,2.55,,UK",  # no customer
        "4,POST,X,1,2010-12-01 09:00:00,18,17850,UK",  # postage
        "5,DCGSSGIRL,X,1,2010-12-01 09:00:00,3,17850,UK",  # no digit: not a product
        "6,22222,X,0,2010-12-01 09:00:00,3,17850,UK",  # no quantity
        "7,22222,X,1,2010-12-01 09:00:00,0,17850,UK",  # free
        "8,22222,X,1,2010-12-01 07:00:00,1.5,12000,UK",
    ]
    path = tmp_path / "or.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")
    events = list(load_online_retail(path))
    assert [(e.user_id, e.session_id, e.item_id, e.quantity) for e in events] == [
        ("12000", "8", "22222", 1),
        ("17850", "1", "85123A", 8),
    ]
    assert events[0].type == "purchase" and events[0].ts == 1291186800.0


def test_retailrocket_loader_reads_both_layouts(tmp_path: Path) -> None:
    sample = tmp_path / "sample.csv"
    sample.write_text("timestamp\tuser_id\titem_id\tsession_id\n20\t0\t5\t0\n10\t0\t4\t0\n")
    assert [(e.ts, e.item_id) for e in load_retailrocket(sample)] == [(10.0, "4"), (20.0, "5")]
    kaggle = tmp_path / "events.csv"
    kaggle.write_text(
        "timestamp,visitorid,event,itemid,transactionid\n"
        "1000000,7,view,1,\n1060000,7,addtocart,1,\n5000000,7,transaction,1,9\n2000000,8,view,2,\n"
    )
    events = list(load_retailrocket(kaggle))
    assert [(e.ts, e.session_id, e.type) for e in events] == [
        (1000.0, "7-0", "view"),
        (1060.0, "7-0", "add_to_cart"),
        (2000.0, "8-0", "view"),
        (5000.0, "7-1", "purchase"),  # more than 30 minutes later: a new session
    ]
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a RetailRocket layout"):
        load_retailrocket(tmp_path / "other.csv")


def test_jsonl_loader_accepts_old_logs_and_names_bad_lines(tmp_path: Path) -> None:
    good = {"event_id": "e1", "ts": 1_300_000_000, "session_id": "s", "type": "view", "item_id": "i"}
    earlier = good | {"event_id": "e0", "ts": 1_200_000_000}
    path = tmp_path / "log.jsonl"
    path.write_bytes(orjson.dumps(good) + b"\n\n" + orjson.dumps(earlier) + b"\n")
    assert [e.event_id for e in load_jsonl(path)] == ["e0", "e1"]
    path.write_bytes(orjson.dumps(good) + b"\n" + orjson.dumps(good | {"ts": 1e12}) + b"\n")
    with pytest.raises(ValueError, match=r"log.jsonl:2: bad_timestamp"):
        load_jsonl(path, now=1_300_000_000)


def test_run_evaluation_and_table(tmp_path: Path) -> None:
    results = run_evaluation("yoochoose", _yoochoose(tmp_path), ks=(1,), models={"pop": Popularity})
    assert set(results["pop"]) >= {"cases", "hr@1", "mrr@1", "coverage", "events_per_s"}
    assert format_table(results).splitlines()[0].startswith("| model | cases | hr@1")
    with pytest.raises(ValueError):
        run_evaluation("movielens", tmp_path)


def test_cli_parses_and_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["evaluate", "--dataset", "yoochoose", "--path", str(_yoochoose(tmp_path)), "--json"])
    assert args.func(args) == 0
    payload = orjson.loads(capsys.readouterr().out)
    assert payload["models"]["vstan"]["cases"] == 2
    assert forecast_results("yoochoose", str(tmp_path)) is None
