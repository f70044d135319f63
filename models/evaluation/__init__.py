"""Offline, prequential evaluation of the online models on the shared public datasets.

The protocols are the ones in ``shared/notes/baselines.md``, so that figures compare with the
published batch baselines; models are asked before they learn each event, as in production.
"""

from shopstream.models.evaluation.report import format_table
from shopstream.models.evaluation.run import run_evaluation

__all__ = ["format_table", "run_evaluation"]
