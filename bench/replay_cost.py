"""What a restored worker's replay costs with its lists built step by step, and held back until it is over.

``python -m shopstream.bench.replay_cost [--events 800000] [--tail 200000]`` learns the seeded stream's first
``--events`` in catch-up steps (the state a checkpoint holds), then replays the next ``--tail`` events on two
copies of that state, in steps of ``--step`` events (the worker's ``SHOPSTREAM_BATCH_STEP_EVENTS``, 40,000; a
catch-up's steps are also cut by the fetch, ``SHOPSTREAM_BATCH_MAX_RECORDS`` records): one building every touched
key's list each step, as a catch-up does, one holding them back (``RecommenderStack.hold_back``) and building
each touched key's list once at the end (tried for a restored worker's whole replay, docs/design.md). CPU
seconds of this process, each way, per trial.
"""

from __future__ import annotations

import argparse
import itertools
import pickle
import time

from shopstream.bench.topics import synthetic
from shopstream.models.engine import RecommenderStack
from shopstream.models.events import Event, parse_event
from shopstream.models.stack_config import StackConfig
from shopstream.streams.batch import tune_process

LEARN_STEP = 40_000


def replay(state: bytes, tail: list[tuple[Event, float]], step: int, held: bool) -> tuple[float, float, int]:
    """CPU seconds learning the tail, and building the held-back lists at the end; lists built."""
    stack: RecommenderStack = pickle.loads(state)
    if held:
        stack.hold_back()
    built = 0
    started = time.process_time()
    for i in range(0, len(tail), step):
        built += len(stack.process(tail[i : i + step]).lists)
    learned = time.process_time() - started
    started = time.process_time()
    for kind, ids in stack.release_held_back() or []:
        built += len(stack.rebuild(kind, ids))
    return learned, time.process_time() - started, built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=800_000)
    parser.add_argument("--tail", type=int, default=200_000)
    parser.add_argument("--step", type=int, default=40_000, help="SHOPSTREAM_BATCH_STEP_EVENTS")
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tune_process()
    stream = synthetic(args.seed, args.events + args.tail)
    stack = RecommenderStack(StackConfig())
    for done in range(0, args.events, LEARN_STEP):
        chunk = itertools.islice(stream, min(LEARN_STEP, args.events - done))
        stack.process([(parse_event(raw), 0.0) for raw in chunk])
    tail = [(parse_event(raw), 0.0) for raw in itertools.islice(stream, args.tail)]
    state = pickle.dumps(stack, protocol=pickle.HIGHEST_PROTOCOL)
    for trial in range(args.trials):
        stepwise, _, built = replay(state, tail, args.step, held=False)
        learned, at_end, held_built = replay(state, tail, args.step, held=True)
        print(f"trial {trial}: lists every step {stepwise:.2f} s CPU ({built:,} lists); held back "
              f"{learned:.2f} + {at_end:.2f} s ({held_built:,} lists built once); "
              f"ratio {(learned + at_end) / stepwise:.2f}", flush=True)


if __name__ == "__main__":
    main()
