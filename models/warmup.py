"""Compile the stack's kernels before the first real batch.

numba compiles a kernel on its first call and caches it (``cache=True``): on a fresh install the item graphs',
the MF's and the session blend's kernels take tens of CPU seconds, which a worker's first batch would spend
with its records waiting (and a short stream could pass unserved). A throwaway stack of the same settings run
over a few made-up events compiles them, or loads them from the cache in about a second.
"""

from __future__ import annotations

from shopstream.models.engine import RecommenderStack
from shopstream.models.events import Event
from shopstream.models.stack_config import StackConfig

_KINDS = ("view", "view", "view", "add_to_cart", "view", "purchase")


def warm_kernels(config: StackConfig, events: int = 600) -> None:
    """Every list kind built and every model learned at least once, through the same code a batch runs.

    >>> warm_kernels(StackConfig(top_k=3), events=60)
    """
    t0 = 1e9
    made_up = [
        Event(f"warmup-{i}", t0 + i, f"s{i % 30}", _KINDS[i % len(_KINDS)], f"i{(i * 7) % 50}", user_id=f"u{i % 12}",
              price=1.0, category=f"c{i % 3}")
        for i in range(events)
    ]
    stack = RecommenderStack(config)
    stack.process([(event, 0.0) for event in made_up])
    stack.flush(t0 + events + 24 * 3600.0)  # the throttled lists (items, users, categories) come due
