"""Every PromQL expression of the dashboard and the rules, run by a real Prometheus against the real pipeline.

promtool checks syntax and rule logic on synthetic series; only a live scrape shows that the queries match
what the processes actually export (names, label sets, histogram buckets). A Prometheus on loopback scrapes
the ``pipeline`` fixture's worker and collector every second while synthetic traffic, invalid events and one
undecodable Kafka record flow through; then each expression must parse, and the core ones must return data.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kafka import KafkaProducer

from shopstream.bench.processes import free_port
from shopstream.producers.synthetic import SyntheticTraffic
from tests.pipeline import Pipeline

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "monitoring" / "alerts.yml"
DASHBOARD = REPO / "monitoring" / "grafana" / "dashboards" / "shopstream.json"
TRAFFIC_S = 15.0
# Grafana fills these in before sending a query; with a 1 s scrape any window over a few seconds works.
GRAFANA_VARIABLES = {"$__rate_interval": "1m"}
# Panels whose every query must return series once traffic has flowed.
CORE_PANELS = (
    "Throughput by event type",
    "Freshness p50 / p95 / p99",
    "Hit-rate by model and K",
    "Kafka consumer lag by partition",
    "Dead-letter rate by reason",
    "Redis write latency p50 / p99",
)


def for_prometheus(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unsubstituted Grafana variable in {expr}"
    return expr


def dashboard_queries() -> dict[str, list[str]]:
    """Panel title → its expressions, as Prometheus receives them."""
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    return {panel["title"]: [for_prometheus(t["expr"]) for t in panel["targets"]] for panel in panels}


def rule_queries() -> list[str]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def query(self, expr: str) -> dict[str, Any]:
        response = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        return response.json()

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


@pytest.fixture(scope="module")
def prometheus(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Prometheus scraping the pipeline every second and evaluating the real rule file every second."""
    exe = shutil.which("prometheus")
    assert exe, "prometheus not found: apt-get install -y prometheus (or scripts/servers.sh install)"
    tmp = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": "shopstream-worker",
             "static_configs": [{"targets": [pipeline.worker_url.removeprefix("http://")]}]},
            {"job_name": "shopstream-collector",
             "static_configs": [{"targets": [pipeline.collector_url.removeprefix("http://")]}]},
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    log = tmp / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [exe, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    server = Prometheus(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"prometheus exited with {process.returncode}\n{server.tail()}")
            try:
                if requests.get(f"{server.url}/-/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus not ready in 30 s\n{server.tail()}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def send_bad_records(pipeline: Pipeline, kafka_bootstrap: str) -> None:
    """Invalid events both ways: posted (collector validation) and straight into Kafka (worker dead letters)."""
    bad = [{"v": 1, "type": "teleport", "event_id": "bad-1"}, {"not": "an event"}]
    assert pipeline.post(json.dumps(bad).encode()).status_code == 202
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        producer.send(pipeline.events_topic, key=b"bad-session", value=b"{this is not json")
        producer.send(pipeline.events_topic, key=b"bad-session", value=b'[{"v": 1, "type": "teleport"}]')
        producer.flush(timeout=10)
    finally:
        producer.close(timeout=5)


@pytest.fixture(scope="module")
def results(prometheus: Prometheus, pipeline: Pipeline, kafka_bootstrap: str) -> dict[str, dict[str, Any]]:
    """Traffic for TRAFFIC_S seconds, then every expression's answer (expr → API response)."""
    traffic = SyntheticTraffic(seed=7, start_ts=time.time())
    send_bad_records(pipeline, kafka_bootstrap)
    deadline = time.monotonic() + TRAFFIC_S
    while time.monotonic() < deadline:
        response = pipeline.post(json.dumps(traffic.take(40)).encode())
        assert response.status_code == 202, response.text
        time.sleep(0.1)
    send_bad_records(pipeline, kafka_bootstrap)

    core = [expr for title in CORE_PANELS for expr in dashboard_queries()[title]]
    wait_until = time.monotonic() + 20
    while any(not prometheus.query(expr).get("data", {}).get("result") for expr in core):
        if time.monotonic() > wait_until:
            break  # the assertions below name what stayed empty
        time.sleep(1.0)

    exprs = sorted({*rule_queries(), *(e for es in dashboard_queries().values() for e in es)})
    return {expr: prometheus.query(expr) for expr in exprs}


def test_every_expression_parses_and_runs(results: dict[str, dict[str, Any]], prometheus: Prometheus) -> None:
    failed = {expr: answer.get("error") for expr, answer in results.items() if answer.get("status") != "success"}
    assert failed == {}, prometheus.tail()


def test_core_queries_return_data(results: dict[str, dict[str, Any]], pipeline: Pipeline) -> None:
    empty = [
        f"{title}: {expr}" for title in CORE_PANELS for expr in dashboard_queries()[title]
        if not results[expr]["data"]["result"]
    ]
    assert empty == [], pipeline.tail()


def test_every_dashboard_and_rule_query_was_executed(results: dict[str, dict[str, Any]]) -> None:
    missing = [e for es in dashboard_queries().values() for e in es if e not in results]
    missing += [e for e in rule_queries() if e not in results]
    assert missing == []


def test_rules_load_and_evaluate_cleanly(results: dict[str, dict[str, Any]], prometheus: Prometheus) -> None:
    """The rule file as deployed: every group loaded, no rule in error once it has real series to work on."""
    groups = requests.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    expected = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    assert loaded == {rule.get("alert") or rule["record"] for group in expected for rule in group["rules"]}
    unhealthy = {rule["name"]: rule.get("lastError") for g in groups for rule in g["rules"] if rule["health"] == "err"}
    assert unhealthy == {}


def test_worker_reports_dead_letters_by_reason(results: dict[str, dict[str, Any]]) -> None:
    """The DLQ panel's reasons are the worker's reason codes (an undecodable record is invalid_json)."""
    (expr,) = [e for e in dashboard_queries()["Dead-letter rate by reason"] if "shopstream_dlq_events_total" in e]
    reasons = {series["metric"].get("reason") for series in results[expr]["data"]["result"]}
    assert "invalid_json" in reasons
    assert all(re.fullmatch(r"[a-z_]+", str(reason)) for reason in reasons)
