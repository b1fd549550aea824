"""Streamed parquet shards `<config>/<split>-NNNNN-of-NNNNN.parquet` (docs/design.md §3.4).

Rows arrive from a generator and are written batch by batch, so with `--with-images` only one batch
of image bytes is in memory at a time. A shard is closed before a batch would push it past
`max_shard_size`, measured like datasets' `push_to_hub` does: uncompressed Arrow bytes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import pyarrow as pa
from datasets import Features
from datasets.arrow_writer import ParquetWriter
from datasets.utils.py_utils import convert_file_size_to_int

from focusclip.core.errors import fail
from focusclip.core.io import naming

MAX_BATCH_ROWS = 1000
MAX_BATCH_BYTES = 16 * 2**20


def parse_shard_size(text: str | int) -> int:
    """'500MB', '1GB', '64KiB' or a byte count → bytes."""
    try:
        n = convert_file_size_to_int(text)
    except (ValueError, TypeError):
        n = -1
    if not isinstance(n, int) or n <= 0:
        raise fail(f"--max-shard-size '{text}' is not a size", None, "e.g. 500MB, 1GB or 64KiB")
    return n


@dataclass
class SplitFiles:
    """What one split became: shard paths relative to the dataset folder, rows and Arrow bytes."""
    files: list[str] = field(default_factory=list)
    num_examples: int = 0
    num_bytes: int = 0
    download_size: int = 0  # parquet bytes on disk


def _row_bytes(row: dict) -> int:
    """Rough size of a row before encoding, to cut batches (the exact size is measured per batch)."""
    n = 512 + len(row["description"]) + 400 * len(row["people"])
    for key in ("image_data", "heatmap"):
        if row.get(key):
            n += len(row[key]["bytes"])
    return n


def batches(rows: Iterable[dict], features: Features, max_bytes: int) -> Iterator[pa.Table]:
    """Arrow tables of encoded rows, each about max_bytes (bounded by MAX_BATCH_*) or smaller."""
    budget = max(1, min(MAX_BATCH_BYTES, max_bytes))
    schema = features.arrow_schema
    buf: list[dict] = []
    size = 0
    for row in rows:
        buf.append(features.encode_example(row))
        size += _row_bytes(row)
        if len(buf) >= MAX_BATCH_ROWS or size >= budget:
            yield pa.Table.from_pylist(buf, schema=schema)
            buf, size = [], 0
    if buf:
        yield pa.Table.from_pylist(buf, schema=schema)


def write_split(rows: Iterable[dict], features: Features, root: Path, config: str, split: str,
                max_shard_bytes: int) -> SplitFiles:
    """Write one split's rows as shards under root/config/. An empty split gets no shard and is left
    out of the card's `configs` (`load_dataset` refuses a split without data)."""
    folder = root / config
    folder.mkdir(parents=True, exist_ok=True)
    with naming(folder):   # a full disk under pyarrow names no file: say which folder it was
        return _write_split(rows, features, root, folder, split, max_shard_bytes)


def _write_split(rows: Iterable[dict], features: Features, root: Path, folder: Path, split: str,
                 max_shard_bytes: int) -> SplitFiles:
    out = SplitFiles()
    tmp_paths: list[Path] = []
    writer, shard_bytes = None, 0
    # A batch is at most 1/8 of a shard, so a shard overshoots the limit by at most that.
    for table in batches(rows, features, max_shard_bytes // 8):
        if writer is not None and shard_bytes and shard_bytes + table.nbytes > max_shard_bytes:
            writer.finalize()
            writer = None
        if writer is None:
            tmp_paths.append(folder / f".{split}-{len(tmp_paths):05d}.parquet.tmp")
            writer, shard_bytes = ParquetWriter(features=features, path=str(tmp_paths[-1])), 0
        writer.write_table(table)
        shard_bytes += table.nbytes
        out.num_examples += table.num_rows
        out.num_bytes += table.nbytes
    if writer is None:  # no rows: no shard (datasets cannot load a split without data)
        return out
    writer.finalize()
    n = len(tmp_paths)
    for i, tmp in enumerate(tmp_paths):
        final = folder / f"{split}-{i:05d}-of-{n:05d}.parquet"
        os.replace(tmp, final)
        out.files.append(final.relative_to(root).as_posix())
        out.download_size += final.stat().st_size
    return out
