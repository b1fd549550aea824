"""`focus-data filter`: keep descriptions that are sound and agree with the keypoints (docs/filter.md).

`stage` is the loop and the regeneration rounds, `checks` the per-record predicates, `claims` the
text parsers they use, `records` reading descriptions, `text_metrics` the corpus metrics.
"""
from focusclip.pipeline.filter.checks import config_with
from focusclip.pipeline.filter.stage import run_filter

__all__ = ["config_with", "run_filter"]
