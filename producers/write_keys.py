"""Per-site write keys: which key may send events, and from which web origin.

A write key identifies a site's tracker, as Segment's and Snowplow's do; it sits in the page, so it is not a
secret, but it makes every event attributable to a site, lets one site be cut off (remove its key) and rate
limited alone, and gives the CORS allow-list its default (the keys' origins). Keys come from
``SHOPSTREAM_WRITE_KEYS`` and the file ``SHOPSTREAM_WRITE_KEYS_FILE``, as ``key=origin`` entries separated by
commas or new lines (``#`` starts a comment in the file).

>>> parse_write_keys("k-shop-one-0001=https://shop.example, k-shop-two-0002=http://b.example:8000")
{'k-shop-one-0001': 'https://shop.example', 'k-shop-two-0002': 'http://b.example:8000'}
>>> parse_write_keys("short=https://shop.example")
Traceback (most recent call last):
...
ValueError: write key 'short': 12-128 characters of A-Z a-z 0-9 _ - expected
"""

from __future__ import annotations

import re
from pathlib import Path

_KEY = re.compile(r"[A-Za-z0-9_-]{12,128}")
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def parse_write_keys(text: str) -> dict[str, str]:
    """``{key: origin}`` from ``key=origin`` entries; raises ValueError naming the first bad entry."""
    keys: dict[str, str] = {}
    for line in text.splitlines():
        for entry in line.split("#", 1)[0].split(","):
            if not entry.strip():
                continue
            key, _, origin = (part.strip() for part in entry.partition("="))
            if not _KEY.fullmatch(key):
                raise ValueError(f"write key {key[:20]!r}: 12-128 characters of A-Z a-z 0-9 _ - expected")
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(f"write key {key[:20]!r}: origin {origin[:60]!r} is not scheme://host[:port]")
            keys[key] = origin
    return keys


def load_write_keys(inline: str, path: str) -> dict[str, str]:
    """The keys of the setting and of the file (if a path is given)."""
    keys = parse_write_keys(inline)
    if path:
        keys.update(parse_write_keys(Path(path).read_text()))
    return keys
