"""The consumer-side reader: pure chain/merge logic, then the same against a real Redis."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import redis
import redis.asyncio as aioredis

from shopstream.client.reader import (
    EMPTY,
    AsyncRecommendationReader,
    RecommendationReader,
    StoredList,
    decode,
    merge,
    recommend_chain,
    similar_chain,
)
from shopstream.contracts.lists import BY_NAME
from tests.servers import RedisTarget

NOW = 1_700_000_100.0


def stored(items: list[str], model: str = "m", updated_at: float = NOW - 10) -> StoredList:
    return StoredList(model, updated_at, items, [1.0 / (i + 1) for i in range(len(items))])


def value(items: list[str], model: str = "m", updated_at: float = NOW - 10, **extra: object) -> bytes:
    """A value exactly as the worker writes it (streams/redis_sink.py encode_list)."""
    scores = [round(1.0 / (i + 1), 6) for i in range(len(items))]
    return orjson.dumps({"v": 1, "model": model, "updated_at": updated_at, "items": items, "scores": scores, **extra})


# --- pure logic -------------------------------------------------------------------------------------------


def key(prefix: str, kind: str, key_id: str = "all") -> str:
    return BY_NAME[kind].key(prefix, key_id)


def test_chain_order_and_missing_ids() -> None:
    chain = recommend_chain("p:", user_id="u1", session_id="s1", category="toys")
    assert chain == [
        ("user", "p:rec:user:u1"),
        ("session", "p:rec:session:s1"),
        ("category", "p:rec:trending:category:toys"),
        ("trending", "p:rec:trending"),
    ]
    assert recommend_chain("") == [("trending", "rec:trending")]
    assert similar_chain("", "i1", "toys")[0] == ("item", "rec:item:i1")


def test_first_non_empty_list_wins_and_is_topped_up_without_repeats() -> None:
    lists = [
        ("user", None),
        ("session", stored(["a", "b"], "knn", NOW - 5)),
        ("category", stored([], "trending")),
        ("trending", stored(["b", "c", "d", "e"], "trending", NOW - 60)),
    ]
    recs = merge(lists, k=4, now=NOW)
    assert recs.items == ["a", "b", "c", "d"]
    assert recs.sources == ["session", "trending"]
    assert (recs.model, recs.updated_at, recs.age_s) == ("knn", NOW - 5, 60.0)


def test_a_full_first_list_is_the_only_source() -> None:
    recs = merge([("user", stored(["a", "b", "c"], "mf")), ("trending", stored(["x"], updated_at=0.0))], 2, NOW)
    assert recs.items == ["a", "b"]
    assert recs.sources == ["user"]
    assert recs.age_s == 10.0  # the unused, older trending list does not count


def test_lists_adding_nothing_new_are_not_sources() -> None:
    recs = merge([("session", stored(["a"])), ("category", stored(["a"])), ("trending", stored(["b"]))], 5, NOW)
    assert recs.sources == ["session", "trending"]


def test_exclude_and_empty() -> None:
    assert merge([("item", stored(["i1", "a"]))], 5, NOW, exclude={"i1"}).items == ["a"]
    assert merge([("session", None), ("trending", stored([]))], 5, NOW) == EMPTY
    assert not EMPTY
    assert merge([("session", stored(["a"]))], 0, NOW) == EMPTY


def test_clock_skew_never_gives_negative_age() -> None:
    assert merge([("session", stored(["a"], updated_at=NOW + 3))], 1, NOW).age_s == 0.0


@pytest.mark.parametrize(
    "raw",
    [None, b"", b"not json", b"[1, 2]", b'{"v": 2, "items": ["a"]}', b'{"v": 1, "items": "a"}', b'{"items": []}'],
)
def test_unreadable_values_count_as_missing(raw: bytes | None) -> None:
    assert decode(raw) is None


def test_decode_the_writers_value() -> None:
    assert decode(value(["a", "b"], "session_knn", 12.5)) == StoredList("session_knn", 12.5, ["a", "b"], [1.0, 0.5])
    assert decode(b'{"v":1,"model":"m","updated_at":1,"items":[7],"scores":[1]}').items == ["7"]
    chosen = decode(value(["a"], "session_knn", 12.5, strategy="vsknn", propensity=0.25))
    assert chosen is not None and (chosen.strategy, chosen.propensity) == ("vsknn", 0.25)
    assert decode(value(["a"], strategy=3, propensity=1.5)) == StoredList("m", NOW - 10, ["a"], [1.0])


# --- against Redis ----------------------------------------------------------------------------------------


class CountingRedis(redis.Redis):
    """Counts commands, to hold the reader to one round trip per call."""

    calls: list[str]

    def execute_command(self, *args, **options):  # type: ignore[no-untyped-def]
        self.calls.append(str(args[0]))
        return super().execute_command(*args, **options)


@pytest.fixture
def redis_client(redis_target: RedisTarget) -> redis.Redis | redis.RedisCluster:
    """The reader's tests run on a single Redis node and on a Redis Cluster."""
    return redis_target.client


@pytest.fixture
def reader(redis_client: redis.Redis, key_prefix: str) -> RecommendationReader:
    return RecommendationReader(redis_client, key_prefix, clock=lambda: NOW)


def test_fallback_chain_against_redis(redis_client: redis.Redis, key_prefix: str, reader: RecommendationReader) -> None:
    redis_client.set(key(key_prefix, "trending"), value(["t1", "t2", "t3", "c1"], "trending", NOW - 30), ex=60)
    redis_client.set(key(key_prefix, "category", "toys"), value(["c1", "c2"], "trending", NOW - 20), ex=60)

    cold = reader.recommend(user_id="u-new", session_id="s-new", k=3)
    assert (cold.items, cold.sources, cold.age_s) == (["t1", "t2", "t3"], ["trending"], 30.0)

    by_category = reader.recommend(session_id="s-new", category="toys", k=3)
    assert by_category.items == ["c1", "c2", "t1"]
    assert by_category.sources == ["category", "trending"]

    redis_client.set(key(key_prefix, "session", "s1"), value(["a", "c1"], "session_knn", NOW - 1), ex=60)
    warm = reader.recommend(user_id="u-new", session_id="s1", category="toys", k=4, exclude={"a"})
    assert warm.items == ["c1", "c2", "t1", "t2"]
    assert (warm.sources, warm.model, warm.updated_at, warm.age_s) == (
        ["session", "category", "trending"], "session_knn", NOW - 1, 30.0,
    )

    redis_client.set(key(key_prefix, "user", "u1"), value(["u-a", "u-b"], "implicit_mf"), ex=60)
    assert reader.recommend(user_id="u1", session_id="s1", k=2).sources == ["user"]


def test_similar_against_redis(redis_client: redis.Redis, key_prefix: str, reader: RecommendationReader) -> None:
    assert reader.similar("i1") == EMPTY
    redis_client.set(key(key_prefix, "trending"), value(["i1", "t1"]), ex=60)
    redis_client.set(key(key_prefix, "item", "i1"), value(["i2"], "session_knn", strategy="vsknn", propensity=0.3),
                     ex=60)
    recs = reader.similar("i1", k=3)
    assert (recs.items, recs.sources, recs.model) == (["i2", "t1"], ["item", "trending"], "session_knn")
    # What the page sends back with each item's impression: the list it came from, its strategy and propensity.
    assert recs.list_refs == [{"surface": "item", "strategy": "vsknn", "propensity": 0.3, "position": 0},
                              {"surface": "trending", "strategy": "m", "position": 1}]


def test_one_round_trip_per_call(redis_url: str, key_prefix: str) -> None:
    """On one node; on a cluster the chain's keys are read with one MGET per hash slot."""
    client = CountingRedis.from_url(redis_url)
    client.calls = []
    try:
        RecommendationReader(client, key_prefix).recommend(user_id="u", session_id="s", category="c", k=5)
        RecommendationReader(client, key_prefix).similar("i", category="c")
    finally:
        client.close()
    assert client.calls == ["MGET", "MGET"]


def test_async_reader_gives_the_same_answer(redis_target: RedisTarget, redis_client: redis.Redis, key_prefix: str,
                                            reader: RecommendationReader) -> None:
    redis_client.set(key(key_prefix, "trending"), value(["t1", "t2"]), ex=60)
    redis_client.set(key(key_prefix, "session", "s1"), value(["a"]), ex=60)

    async def read() -> tuple[object, object]:
        if redis_target.mode == "cluster":
            client = aioredis.RedisCluster.from_url(redis_target.url)
        else:
            client = aioredis.from_url(redis_target.url)
        try:
            async_reader = AsyncRecommendationReader(client, key_prefix, clock=lambda: NOW)
            return await async_reader.recommend(session_id="s1", k=3), await async_reader.similar("t1", k=3)
        finally:
            await client.aclose()

    recs, similar = asyncio.run(read())
    assert recs == reader.recommend(session_id="s1", k=3)
    assert similar == reader.similar("t1", k=3)
