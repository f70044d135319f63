"""Where the shared real datasets are: ``SHOPSTREAM_SHARED_DATA``, else ``shared/data`` beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

_BESIDE_CHECKOUT = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SHARED_DATA = Path(os.environ.get("SHOPSTREAM_SHARED_DATA", _BESIDE_CHECKOUT))
