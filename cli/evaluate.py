"""``shopstream evaluate``: score the online models on a shared dataset under the baselines' protocols, or
estimate a list strategy off-policy on logged impressions (``--dataset impressions``).

Prints a table (or JSON with ``--json``). For Online Retail it also runs the daily demand forecast
protocol when ``shopstream.models.evaluation.forecasting`` is installed.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from typing import Any

import orjson

DATASETS = ("yoochoose", "online-retail", "retailrocket", "jsonl", "tsv", "impressions")
FORECASTING = "shopstream.models.evaluation.forecasting"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``evaluate`` subcommand on the main parser's subparsers."""
    parser = subparsers.add_parser("evaluate", help="score the models on a dataset, predicting before learning")
    parser.add_argument("--dataset", choices=DATASETS, required=True)
    parser.add_argument(
        "--path", required=True,
        help="data file, or the folder holding YOOCHOOSE's train/test; formats in docs/evaluation.md",
    )
    parser.add_argument(
        "--test-days", type=float,
        help="test part: sessions ending in the log's last N days, the rest trains (default: YOOCHOOSE's own "
        "test file, else every event scored)",
    )
    parser.add_argument("--k", type=int, nargs="+", default=[10, 20], help="list lengths to score (default 10 20)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--target", default="vsknn",
        help="impressions only: the strategy to estimate, or a mix such as vsknn=0.5,transitions=0.5",
    )
    parser.add_argument("--surface", default="session", help="impressions only: the list kind (default session)")
    parser.add_argument("--reward", choices=("click", "add_to_cart", "purchase"), default="click")
    parser.add_argument("--window-s", type=float, default=1800.0, help="impressions only: attribution window")
    parser.set_defaults(func=run)
    return parser


def forecast_results(dataset: str, path: str) -> dict[str, Any] | None:
    """The demand forecast protocol's results for Online Retail, if the forecasting module exists."""
    if dataset != "online-retail" or importlib.util.find_spec(FORECASTING) is None:
        return None
    return importlib.import_module(FORECASTING).evaluate_daily_forecasts(path)


def run(args: argparse.Namespace) -> int:
    if args.dataset == "impressions":
        return run_off_policy(args)
    from shopstream.models.evaluation import format_table, run_evaluation

    results = run_evaluation(args.dataset, args.path, ks=tuple(args.k), test_days=args.test_days)
    forecasts = forecast_results(args.dataset, args.path)
    if args.json:
        payload: dict[str, Any] = {"dataset": args.dataset, "path": args.path, "models": results}
        if forecasts is not None:
            payload["forecasts"] = forecasts
        print(orjson.dumps(payload, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode())
        return 0
    print(f"{args.dataset} ({args.path})")
    print(format_table(results))
    if forecasts is not None:
        print("\ndaily demand forecasts")
        print(orjson.dumps(forecasts, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode())
    return 0


def run_off_policy(args: argparse.Namespace) -> int:
    """IPS and SNIPS of ``--target`` on a JSONL log of impressions and clicks (docs/evaluation.md)."""
    from shopstream.models.evaluation.loaders import load_jsonl
    from shopstream.models.evaluation.logged import evaluate_logged, format_logged

    result = evaluate_logged(load_jsonl(args.path), args.target, args.surface, args.reward, args.window_s)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() if args.json else format_logged(result))
    return 0
