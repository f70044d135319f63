"""Bounded shutdown: a stopping worker that has not exited within its bound ends without finishing its stop.

Stopping cancels the events reader, and with it a write being retried; but anything else can hold a stop (a
step in the step thread, a service that does not answer). So the bound is enforced from outside the stop:
when the app starts stopping, :func:`arm` starts a timer thread (not a task: the event loop may be the thing
stuck) that ends the process with :data:`EXIT_ABANDONED` if it still runs after the timeout. Nothing is lost:
progress lives in the checkpoints, taken between written batches, so the next start reads an abandoned
batch's events again (at-least-once), and their ids keep them from being learned twice.
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
