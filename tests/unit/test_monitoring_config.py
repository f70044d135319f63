"""The monitoring config is code: promtool validates and unit-tests the rules, and the dashboard is checked
for what Grafana's provisioning needs, so a broken alert or panel fails CI instead of a night on call.

promtool is required (Debian's ``prometheus`` package; ``scripts/servers.sh install`` installs it): a missing
promtool fails these tests rather than skipping them.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from shopstream.producers import collector_metrics
from shopstream.streams import metrics as worker_metrics

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
GRAFANA = MONITORING / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "shopstream.json"
DOCS = REPO / "docs" / "metrics.md"

# Metrics the dashboards and alerts read but the code does not export yet: docs/metrics.md proposes them.
# Series Prometheus makes itself.
BUILTIN_SERIES = {"up"}
# Panel types of Grafana 10/11 core plugins.
PANEL_TYPES = {
    "timeseries", "stat", "gauge", "bargauge", "table", "heatmap", "histogram", "piechart", "text",
    "state-timeline", "status-history", "barchart", "logs", "row",
}
# Unit ids from Grafana's value formats (packages/grafana-data/src/valueFormats/categories.ts).
UNITS = {"s", "ms", "µs", "ns", "percent", "percentunit", "short", "none", "eps", "ops", "reqps", "cps", "bytes"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool not found: apt-get install -y prometheus (or scripts/servers.sh install)"
    return subprocess.run([exe, *args], cwd=MONITORING, capture_output=True, text=True, timeout=120, check=False)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(MONITORING / "alerts.yml")["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def dashboard_builder() -> ModuleType:
    """monitoring/ is not a package: load the generator by path."""
    spec = importlib.util.spec_from_file_location("build_dashboard", GRAFANA / "build_dashboard.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


def exported_metrics() -> dict[str, str]:
    """Name (as scraped, with ``_total`` on counters) → type, for every metric the code defines."""
    out: dict[str, str] = {}
    for module in (worker_metrics, collector_metrics):
        for obj in vars(module).values():
            if isinstance(obj, MetricWrapperBase):
                desc = obj.describe()[0]
                out[desc.name + ("_total" if desc.type == "counter" else "")] = desc.type
    return out


def series_names(expr: str) -> set[str]:
    """Metric names an expression reads, with histogram suffixes folded onto the histogram's name."""
    names = set(re.findall(r"(?<![\w:])(shopstream_[a-z0-9_]+)(?![\w:])", expr))  # not recorded names
    names |= {name for name in re.findall(r"\b([a-z_]+)\{", expr) if name in BUILTIN_SERIES}
    return {re.sub(r"_(bucket|sum|count)$", "", name) for name in names}


# --- promtool -----------------------------------------------------------------------------------------------


def test_promtool_check_config() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


# --- alert rules ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule["alert"])
def test_alert_is_actionable(rule: dict[str, Any]) -> None:
    """An alert without for/severity/summary/runbook pages on blips or leaves the on-call guessing."""
    assert re.fullmatch(r"Shopstream[A-Z][A-Za-z0-9]*", rule["alert"]), "CamelCase, Shopstream prefix"
    assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), "needs a for: duration"
    assert rule.get("labels", {}).get("severity") in {"critical", "warning"}
    annotations = rule.get("annotations", {})
    for key in ("summary", "description", "runbook"):
        assert annotations.get(key), f"missing annotations.{key}"
    anchor = annotations["runbook"].split("#", 1)[1]
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in DOCS.read_text(encoding="utf-8").splitlines() if line.startswith("#")
    }
    assert anchor in headings, f"docs/metrics.md has no heading for #{anchor}"


def test_every_alert_has_firing_and_quiet_unit_tests() -> None:
    tests = load_yaml(MONITORING / "alerts_test.yml")["tests"]
    fired: set[str] = set()
    quiet: set[str] = set()
    for group in tests:
        for case in group.get("alert_rule_test", []):
            (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - fired == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown staying quiet"
    assert (fired | quiet) - names == set(), "tests for alerts that do not exist"


def test_alert_names_are_unique() -> None:
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names))


# --- dashboard ------------------------------------------------------------------------------------------------


def test_dashboard_json_is_what_the_generator_builds() -> None:
    """Edit build_dashboard.py and re-run it; a hand edit of the JSON is lost at the next build."""
    assert DASHBOARD.read_text(encoding="utf-8") == dashboard_builder().render()


def test_dashboard_uses_the_provisioned_datasource() -> None:
    provisioned = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    uids = {ds["uid"] for ds in provisioned if ds["type"] == "prometheus"}
    assert len(uids) == 1
    for panel in dashboard()["panels"]:
        refs = [panel["datasource"], *(target["datasource"] for target in panel["targets"])]
        for ref in refs:
            assert ref == {"type": "prometheus", "uid": next(iter(uids))}, panel["title"]


def test_dashboard_panels_are_complete() -> None:
    board = dashboard()
    assert board["uid"] and len(board["uid"]) <= 40
    panels = board["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    titles = [panel["title"] for panel in panels]
    assert len(titles) == len(set(titles)), "panel titles must be unique"
    for panel in panels:
        assert panel["type"] in PANEL_TYPES, panel["title"]
        assert panel["description"].strip(), panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"] in UNITS, panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, panel["title"]


def test_dashboard_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard()["panels"]:
        pos = panel["gridPos"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells.get((x, y))}"
                cells[(x, y)] = panel["title"]


def test_dashboard_has_the_required_views() -> None:
    """What the on-call needs on one screen (issue 3)."""
    exprs = " ".join(t["expr"] for p in dashboard()["panels"] for t in p["targets"])
    for needle in (
        "shopstream_events_total", "histogram_quantile(0.5, sum by (le) (rate(shopstream_freshness_seconds_bucket",
        "histogram_quantile(0.95", "histogram_quantile(0.99", "shopstream_recommendation_hits_total",
        "shopstream_recommendation_reciprocal_rank_total", "shopstream_kafka_consumer_lag",
        "sum by (reason) (rate(shopstream_dlq_events_total", "shopstream_redis_write_duration_seconds_bucket",
        "shopstream_redis_errors_total", "shopstream_model_entities",
        "sum by (status) (rate(shopstream_collector_requests",
        "shopstream_collector_validation_failures_total", "shopstream_forecast_absolute_error_total",
        "sum by (surface, strategy) (rate(shopstream_list_clicks_total",
        "max by (surface, strategy) (shopstream_experiment_allocation)",
    ):
        assert needle in exprs, needle


# --- the metric contract --------------------------------------------------------------------------------------


def all_exprs() -> list[str]:
    return [rule["expr"] for rule in rules()] + [t["expr"] for p in dashboard()["panels"] for t in p["targets"]]


def test_queries_read_only_exported_metrics() -> None:
    """A typo in a metric name makes a panel silently empty and an alert silently dead."""
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    known = set(exported_metrics()) | BUILTIN_SERIES
    unknown = {name for expr in all_exprs() for name in series_names(expr)} - known - recorded
    assert unknown == set()


def test_docs_list_every_metric_alert_and_panel() -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = [name for name in sorted(exported_metrics()) if f"`{name}`" not in text]
    missing += [rule["alert"] for rule in alerts() if rule["alert"] not in text]
    missing += [panel["title"] for panel in dashboard()["panels"] if panel["title"] not in text]
    assert missing == []


def test_docs_give_each_metric_its_type() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for name, kind in exported_metrics().items():
        row = next((line for line in text.splitlines() if line.startswith(f"| `{name}`")), None)
        assert row is not None, name
        assert f"| {kind} |" in row, f"{name} should be documented as a {kind}"
