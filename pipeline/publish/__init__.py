"""`focus-data publish`: a hub-ready dataset folder, and its one-commit push (docs/publish.md).

`stage` builds into `<dir>.incomplete` and swaps it in, `rows` turns records into rows, `shards`
writes parquet, `card` and `card_text` the dataset card, `hub` the push.
"""
from focusclip.pipeline.publish.stage import PublishOptions, run_publish

__all__ = ["PublishOptions", "run_publish"]
