"""Bounded shutdown: a stopping worker that cannot finish its write in time exits without committing it.

Faust stops by waiting until every record taken was acknowledged (``Consumer.wait_empty``), then commits and
cancels the agent. With Redis down that wait never ends, because the writer retries the batch until it is
stored; cancelling the write instead would let ``take_events`` acknowledge, and Faust commit, a batch never
written. So the bound is enforced from outside the stop: when the app starts stopping, :func:`arm` starts a
timer thread (not a task: a batch step may hold the event loop's attention, and the loop may be the thing
stuck) that ends the process with :data:`EXIT_ABANDONED` if it still runs after the timeout. ``os._exit``
skips the rest of Faust's stop, so the abandoned batch is neither acknowledged nor committed: the worker that
takes the partition next reads it again (at-least-once), and the events' ids make the replay harmless.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

#: The exit status of an abandoned shutdown (``EX_TEMPFAIL``: the work is left for a retry).
EXIT_ABANDONED = 75


def arm(
    timeout_s: float, describe: Callable[[], str], exit_process: Callable[[int], object] = os._exit
) -> threading.Timer:
    """End the process with :data:`EXIT_ABANDONED` unless it exits within ``timeout_s``; ``describe`` says what
    was still in progress, for the log.

    >>> import time
    >>> codes = []
    >>> _ = arm(0.01, lambda: "nothing", codes.append); time.sleep(0.2); codes
    [75]
    """

    def abandon() -> None:
        log.error("shutdown still running after %.1f s (%s): exiting with %d, nothing more committed",
                  timeout_s, describe(), EXIT_ABANDONED)
        for handler in logging.getLogger().handlers:
            handler.flush()
        exit_process(EXIT_ABANDONED)

    timer = threading.Timer(timeout_s, abandon)
    timer.daemon = True  # a clean exit does not wait for it
    timer.start()
    return timer
