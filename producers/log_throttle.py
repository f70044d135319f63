"""Outage logging that stays readable: each message template at most once per interval.

During a broker outage aiokafka and the collector log the same few lines for every request and every
reconnect (150,000+ ERROR lines an outage were measured before this filter); one line per template and
interval, with the count of the lines it stands for, says the same.
"""

from __future__ import annotations

import logging
import time


class ThrottleFilter(logging.Filter):
    """Lets a (logger, template) pair through at most once per ``interval_s``; WARNING and above only.

    >>> f = ThrottleFilter(interval_s=60)
    >>> rec = lambda: logging.LogRecord("x", logging.ERROR, "", 0, "down: %s", ("a",), None)
    >>> [f.filter(rec()) for _ in range(3)]
    [True, False, False]
    """

    def __init__(self, interval_s: float = 10.0, max_templates: int = 1000) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.max_templates = max_templates
        self._last: dict[tuple[str, str], float] = {}
        self._suppressed: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        if len(self._last) >= self.max_templates and key not in self._last:
            self._last.clear()
            self._suppressed.clear()
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            record.msg = f"{record.msg} [{suppressed} more like this in the last {self.interval_s:g}s]"
        return True
