"""`focus-data download`: MPII and the evaluation datasets, in the layouts the readers expect
(docs/download.md).

`catalog` declares the datasets, `spec` the entry types and path patterns, `fetch` resumable HTTP
(with the stall rule), `opener` the redirect and response-head rules, `unpack` safe zip/tar
extraction (with the bomb limits), `place` the checks and moves into the dataset folder, `stage` the
run, `listing` the --list table.
"""
from focusclip.pipeline.download.catalog import CATALOG
from focusclip.pipeline.download.listing import format_list
from focusclip.pipeline.download.stage import DownloadOptions, Outcome, resolve_names, run_download

__all__ = ["CATALOG", "DownloadOptions", "Outcome", "format_list", "resolve_names", "run_download"]
