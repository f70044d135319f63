"""``shopstream demo``: the whole pipeline on local servers, fed like a shop would feed it.

Starts a collector and a worker, posts seeded synthetic traffic to the collector over HTTP in
tracker-sized NDJSON batches (plus a few malformed events, to show the dead-letter path), then
prints recommendations read back from Redis and a few figures from the worker's /metrics.

The worker runs the strategy experiment on the session, user and item surfaces (``--experiment``, Thompson
sampling by default): after every few batches the demo reads the lists served to the sessions, users and items
it just posted events of (a session list shown to its session, a user list to the user's latest session, an item
list to the session that last viewed the item) and answers them as shoppers would (``ClickModel``: position bias
and a hidden click quality per surface and strategy), posting the impressions and clicks back through the
collector; it prints each surface's allocation as it moves and, at the end, the CTR per surface and strategy
measured by the worker beside the click model's truth.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import orjson
import redis

from shopstream.bench import processes
from shopstream.bench.scrape import histogram_quantile, samples
from shopstream.contracts.lists import BY_NAME
from shopstream.producers.synthetic import ClickModel, SyntheticTraffic

BATCH = 50
FEEDBACK_EVERY = 10  # batches between two readings of the served lists
#: The click model's hidden quality per surface and strategy (a different strategy earns the most on each).
QUALITY = {
    "session": {"transitions": 0.06, "vsknn": 0.09, "trending": 0.04},
    "user": {"repeat_blend": 0.06, "session": 0.09, "trending": 0.03},
    "item": {"transitions": 0.09, "vsknn": 0.06, "trending": 0.04},
}
Clicks = dict[str, ClickModel]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = sub.add_parser("demo", help="run collector + worker on local servers with synthetic traffic")
    demo.add_argument("--events", type=int, default=20_000)
    demo.add_argument("--rate", type=float, default=4_000.0, help="events/s posted to the collector")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--collector-port", type=int, default=8080)
    demo.add_argument("--worker-port", type=int, default=6066)
    demo.add_argument("--experiment", choices=("off", "thompson", "ucb", "ab"), default="thompson",
                      help="how the worker chooses each session's list strategy (SHOPSTREAM_EXPERIMENT)")
    demo.set_defaults(func=run)


async def _post(session: aiohttp.ClientSession, url: str, events: list[dict]) -> tuple[int, int]:
    body = b"\n".join(orjson.dumps(e) for e in events)
    async with session.post(url, data=body, headers={"Content-Type": "application/x-ndjson"}) as resp:
        counts = await resp.json()
    return counts.get("accepted", 0), counts.get("rejected", 0)


def _allocation(metrics_text: str) -> dict[tuple[str, str], float]:
    """Each surface's allocation, by ``(surface, strategy)``."""
    return {(dict(labels)["surface"], dict(labels)["strategy"]): v
            for labels, v in samples(metrics_text, "shopstream_experiment_allocation").items()}


def _metrics(worker_url: str) -> str:
    with urllib.request.urlopen(f"{worker_url}/metrics", timeout=5) as response:
        return response.read().decode()


def _answers(client: redis.Redis, prefix: str, sent: list[dict], clicks: Clicks) -> list[dict]:
    """The click models' impressions and clicks for the lists served to the sessions, users and items that
    just had events: each shown to the session of the latest of those events. An item page shows its list only
    when it fills the carousel (item lists are not topped up), so that every surface's CTR is per impression of
    a full carousel, which is what the click model's truth is."""
    views = [e for e in sent if e["type"] == "view"]
    shown = [(BY_NAME[surface].key(prefix, e[field]), surface, e) for surface, field in
             (("session", "session_id"), ("user", "user_id"), ("item", "item_id"))
             for e in {e[field]: e for e in views if field in e}.values()]
    events: list[dict] = []
    for (_, surface, last), raw in zip(shown, client.mget([key for key, _, _ in shown]), strict=True):
        served = orjson.loads(raw) if raw is not None else None
        if served is not None and len(served["items"]) >= clicks[surface].shown:
            events += clicks[surface].respond(last["session_id"], served, last["ts"], last.get("user_id"))
    return events


async def _post_traffic(
    url: str, events: list[dict], rate: float, client: redis.Redis, prefix: str, worker_url: str,
    clicks: Clicks, answered_log: list[dict],
) -> tuple[int, int, int]:
    """POST NDJSON batches at ``rate`` events/s, answering the served lists every few batches (the answers
    also go to ``answered_log``); returns (accepted, rejected, of which answers) as the collector counted."""
    accepted = rejected = answered = 0
    start = last_print = time.monotonic()
    async with aiohttp.ClientSession() as session:
        for n, i in enumerate(range(0, len(events), BATCH), start=1):
            ok, bad = await _post(session, url, events[i : i + BATCH])
            accepted, rejected = accepted + ok, rejected + bad
            if n % FEEDBACK_EVERY == 0:
                answers = _answers(client, prefix, events[i + BATCH - BATCH * FEEDBACK_EVERY : i + BATCH], clicks)
                answered_log += answers
                for j in range(0, len(answers), 500):
                    ok, bad = await _post(session, url, answers[j : j + 500])
                    accepted, rejected, answered = accepted + ok, rejected + bad, answered + ok
            if time.monotonic() - last_print >= 5.0 or (n <= 5 * FEEDBACK_EVERY and n % FEEDBACK_EVERY == 0):
                last_print = time.monotonic()
                allocation = _allocation(_metrics(worker_url))
                shares = " | ".join(
                    f"{surface}: " + " ".join(f"{arm} {allocation.get((surface, arm), 0.0):.2f}" for arm in quality)
                    for surface, quality in QUALITY.items()
                )
                print(f"  {i + BATCH:>7} events posted, {answered:>6} impressions and clicks; allocation {shares}")
            await asyncio.sleep(max(0.0, start + (i + BATCH) / rate - time.monotonic()))
        bad_body = b'{"event_id": "bad-1", "type": "teleport"}\n{not json'
        async with session.post(url, data=bad_body, headers={"Content-Type": "application/x-ndjson"}) as resp:
            rejected += (await resp.json())["rejected"]
    return accepted, rejected, answered


def _show(title: str, raw: bytes | None) -> None:
    if raw is None:
        print(f"  {title}: (no key)")
        return
    value = orjson.loads(raw)
    age = time.time() - value["updated_at"]
    print(f"  {title}  [{value['model']}, {age:.1f}s old]\n    {', '.join(value['items'][:10])}")


def _report(metrics_text: str, client: redis.Redis, prefix: str, events: list[dict]) -> None:
    processed = samples(metrics_text, "shopstream_events_total")
    print("\nEvents processed by the worker:")
    for labels, value in sorted(processed.items()):
        if value:
            print(f"  {dict(labels)['type']:<17} {dict(labels)['outcome']:<10} {value:>8.0f}")
    dlq = sum(samples(metrics_text, "shopstream_dlq_events_total").values())
    buckets = {
        float(dict(labels)["le"]): value
        for labels, value in samples(metrics_text, "shopstream_freshness_seconds_bucket").items()
        if dict(labels)["kind"] == "session"
    }
    print(f"Dead-lettered by the worker: {dlq:.0f} (the collector rejected the malformed ones before Kafka)")
    print(f"Freshness of session keys (Redis write - Kafka timestamp): "
          f"p50 {histogram_quantile({}, buckets, 0.5) * 1000:.0f} ms, "
          f"p99 {histogram_quantile({}, buckets, 0.99) * 1000:.0f} ms")
    hits = samples(metrics_text, "shopstream_recommendation_hits_total")
    predictions = samples(metrics_text, "shopstream_recommendation_predictions_total")
    print("Online hit-rate (each event's item in the list its session or user was shown just before it):")
    for labels, n in sorted(predictions.items()):
        if n and dict(labels)["k"] == "20":
            print(f"  {dict(labels)['model']:<24} HR@20 {hits.get(labels, 0) / n:.3f}  over {n:.0f} events")

    _report_strategies(metrics_text)

    print("\nRecommendations read back from Redis:")
    last = events[-1]
    user = next(e["user_id"] for e in reversed(events) if "user_id" in e)
    _show(f"rec:session:{last['session_id']}", client.get(f"{prefix}rec:session:{last['session_id']}"))
    _show(f"rec:user:{user}", client.get(f"{prefix}rec:user:{user}"))
    _show(f"rec:item:{last['item_id']}", client.get(f"{prefix}rec:item:{last['item_id']}"))
    _show("rec:trending", client.get(f"{prefix}rec:trending"))
    _show(f"rec:trending:category:{last['category']}", client.get(f"{prefix}rec:trending:category:{last['category']}"))


def _report_strategies(metrics_text: str) -> None:
    impressions = samples(metrics_text, "shopstream_list_impressions_total")
    clicks = samples(metrics_text, "shopstream_list_clicks_total")
    allocation = _allocation(metrics_text)
    print("Strategies per surface (click model's true CTR per impression beside the measured one):")
    for labels, shown in sorted(impressions.items()):
        surface, strategy = dict(labels)["surface"], dict(labels)["strategy"]
        share, clicked = allocation.get((surface, strategy), 0.0), clicks.get(labels, 0.0)
        truth = ClickModel(QUALITY.get(surface, {})).ctr(strategy)
        print(f"  {surface:<8} {strategy:<13} allocation {share:.3f}  impressions {shown:>7.0f}  "
              f"clicks {clicked:>6.0f}  CTR {clicked / shown:.4f}  (true {truth:.4f})")


def _report_off_policy(events: list[dict], answers: list[dict]) -> None:
    """What each strategy would have earned had it served every list of its surface, estimated from the demo's
    own log as ``shopstream evaluate --dataset impressions`` would, beside the click model's truth: the arms the
    bandit starved are still estimated, from the exploration floor's share. SNIPS is the one to read on the item
    surface: short item lists are not shown (see ``_answers``), so how many impressions a list makes depends on
    its strategy, which IPS per impression assumes it does not."""
    from shopstream.models.evaluation.logged import evaluate_logged
    from shopstream.models.events import parse_event

    logged = sorted((parse_event(e, now=math.inf) for e in events + answers), key=lambda e: e.ts)
    print("Off-policy estimates on the demo's log (click per impression, 95% CI):")
    for surface, quality in QUALITY.items():
        for arm in quality:
            try:
                result = evaluate_logged(logged, arm, surface)
            except ValueError as error:  # nothing of the surface was logged (no list served in time)
                print(f"  {surface:<8} {arm:<13} {error}")
                continue
            cells = [f"{name.upper()} {est['value']:.4f} [{est['low']:.4f}, {est['high']:.4f}]"
                     for name, est in ((name, result[name]) for name in ("ips", "snips"))]
            print(f"  {surface:<8} {arm:<13} {'  '.join(cells)}  true {ClickModel(quality).ctr(arm):.4f}")


def _processed(worker_url: str) -> float:
    counts = samples(_metrics(worker_url), "shopstream_events_total")
    return sum(v for labels, v in counts.items() if dict(labels)["outcome"] in ("processed", "duplicate"))


def run(args: argparse.Namespace) -> int:
    logs = Path(tempfile.mkdtemp(prefix="shopstream-demo-"))
    collector_env, write_key = processes.local_collector_env(args.collector_port)
    env = {
        **os.environ,
        **collector_env,
        "SHOPSTREAM_WEB_PORT": str(args.worker_port),
        "SHOPSTREAM_LOG_LEVEL": os.environ.get("SHOPSTREAM_LOG_LEVEL", "warn"),
        "SHOPSTREAM_EXPERIMENT": args.experiment,
        "SHOPSTREAM_HIT_RATE_SAMPLE": "0.1",  # a tenth of the sessions: hit-rates over ~1,000 events of 20,000
    }
    collector_url = f"http://127.0.0.1:{args.collector_port}"
    worker_url = f"http://127.0.0.1:{args.worker_port}"
    print(f"Starting collector ({collector_url}) and worker ({worker_url}); logs in {logs}")
    running = [processes.start_component(name, env, logs / f"{name}.log") for name in ("collector", "worker")]
    try:
        processes.wait_ready(running[0], collector_url, log_path=logs / "collector.log")
        processes.wait_ready(running[1], worker_url, log_path=logs / "worker.log")
        baseline = _processed(worker_url)
        from shopstream.config.settings import CommonSettings, load

        settings = load(CommonSettings)
        client = redis.Redis.from_url(settings.redis_url)
        events = SyntheticTraffic(seed=args.seed, start_ts=time.time(), rate=args.rate).take(args.events)
        print(f"Posting {len(events)} synthetic events to the collector at {args.rate:.0f}/s "
              f"in NDJSON batches of {BATCH}, answering the served lists every {FEEDBACK_EVERY} batches "
              f"(hidden click quality per surface {QUALITY})...")
        url = f"{collector_url}/v1/events?key={write_key}"
        clicks = {surface: ClickModel(quality, seed=args.seed + n, surface=surface)
                  for n, (surface, quality) in enumerate(QUALITY.items())}
        answers: list[dict] = []
        accepted, rejected, answered = asyncio.run(
            _post_traffic(url, events, args.rate, client, settings.key_prefix, worker_url, clicks, answers)
        )
        print(f"Collector: {accepted} accepted ({answered} of them impressions, clicks and carts), "
              f"{rejected} rejected (sent to the dead-letter topic)")
        deadline = time.monotonic() + 60
        while _processed(worker_url) - baseline < accepted and time.monotonic() < deadline:
            time.sleep(0.2)
        _report(_metrics(worker_url), client, settings.key_prefix, events)
        _report_off_policy(events, answers)
        print(f"\nMetrics: {worker_url}/metrics (worker), {collector_url}/metrics (collector)")
    finally:
        for process in running:
            processes.stop(process)
    return 0
