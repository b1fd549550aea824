"""`describe --shard I/N` outputs read together by `filter` and `publish`: complete shards give the dataset
one unsharded run gives; a missing or twice-described image is named and refused unless allowed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from focusclip.core.errors import FocusError
from focusclip.core.io import read_jsonl
from focusclip.data.records import write_annotations
from focusclip.pipeline.cli import app
from focusclip.pipeline.describe.stage import DescribeOptions, run_describe
from focusclip.pipeline.filter import run_filter
from focusclip.pipeline.publish.stage import PublishOptions, run_publish
from tests.pipeline.describe.test_describe import random_annotations


@pytest.fixture
def ann_file(tmp_path):
    path = tmp_path / "annotations.jsonl"
    write_annotations(path, random_annotations(15, seed=4))
    return path


def _shards(ann_file, folder: Path, n: int = 3) -> list[Path]:
    folder.mkdir(exist_ok=True)
    out = []
    for i in range(n):
        out.append(folder / f"template.shard-{i}.jsonl")
        run_describe(DescribeOptions(ann_file, out[-1], shard=f"{i}/{n}"), progress=False)
    return out


def _no_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "created"} for r in rows]


def _published(folder: Path) -> dict[str, list[dict]]:
    import pyarrow.parquet as pq

    return {str(p.relative_to(folder)): pq.read_table(p).to_pylist() for p in sorted(folder.rglob("*.parquet"))}


def test_complete_shards_give_the_unsharded_dataset(ann_file, tmp_path):
    one = tmp_path / "one" / "template.jsonl"
    run_describe(DescribeOptions(ann_file, one), progress=False)
    run_filter(one, ann_file, one.with_name("template.kept.jsonl"))
    run_publish(PublishOptions(ann_file, {"template": one.with_name("template.kept.jsonl")}, tmp_path / "pub-one"))

    shards = _shards(ann_file, tmp_path / "sh")
    # filter the shards together (a quoted glob, through the command) …
    together = tmp_path / "sh" / "template.kept.jsonl"
    r = CliRunner().invoke(app, ["filter", str(tmp_path / "sh" / "template.shard-*.jsonl"), "--annotations",
                                 str(ann_file), "-o", str(together)])
    assert r.exit_code == 0, r.output
    assert sorted(map(json.dumps, _no_time(read_jsonl(together)))) == \
        sorted(map(json.dumps, _no_time(read_jsonl(one.with_name("template.kept.jsonl")))))
    report = json.loads(together.with_suffix(".report.json").read_text())
    assert report["shards"] == {"files": list(map(str, shards)), "missing": [], "duplicated": {}}
    # … or each apart, and publish the kept shards together: the same rows as the unsharded run
    for s in shards:
        run_filter(s, ann_file, s.with_suffix(".kept.jsonl"))
    r = CliRunner().invoke(app, ["publish", "--annotations", str(ann_file), "--descriptions",
                                 f"template={tmp_path / 'sh' / 'template.shard-*.kept.jsonl'}",
                                 "-o", str(tmp_path / "pub-shards")])
    assert r.exit_code == 0, r.output
    one_rows, shard_rows = _published(tmp_path / "pub-one"), _published(tmp_path / "pub-shards")
    assert one_rows and shard_rows == one_rows


def test_a_missing_and_a_twice_described_image_are_named_and_refused_unless_allowed(ann_file, tmp_path):
    shards = _shards(ann_file, tmp_path / "sh")
    first = [json.loads(x) for x in shards[0].read_text().splitlines()]
    lost, copied = first[0]["image"], read_jsonl(shards[1])[0]
    shards[0].write_text("".join(json.dumps(r) + "\n" for r in first[1:]))       # lost: in no shard
    with open(shards[2], "a") as f:                                               # copied: in two
        f.write(json.dumps(copied) + "\n")
    named = (rf"the 3 shard files do not describe every image once: 1 image\(s\) missing from every shard "
             rf"\({lost}\) and 1 described in more than one \({copied['image']} in template.shard-1.jsonl, "
             rf"template.shard-2.jsonl\)")

    with pytest.raises(FocusError, match=named):
        run_filter(shards, ann_file, tmp_path / "sh" / "all.kept.jsonl")
    assert not (tmp_path / "sh" / "all.kept.jsonl").exists()
    report = run_filter(shards, ann_file, tmp_path / "sh" / "all.kept.jsonl", allow_incomplete_shards=True)
    assert report.extra["shards"]["missing"] == [lost]
    assert report.extra["shards"]["duplicated"] == {copied["image"]: ["template.shard-1.jsonl",
                                                                      "template.shard-2.jsonl"]}

    for s in shards:
        run_filter(s, ann_file, s.with_suffix(".kept.jsonl"))
    glob = tmp_path / "sh" / "template.shard-*.kept.jsonl"
    named_kept = named.replace(".jsonl", ".kept.jsonl")
    with pytest.raises(FocusError, match=named_kept):
        run_publish(PublishOptions(ann_file, {"template": glob}, tmp_path / "pub"))
    assert not (tmp_path / "pub").exists()
    r = CliRunner().invoke(app, ["publish", "--annotations", str(ann_file), "--descriptions", f"template={glob}",
                                 "-o", str(tmp_path / "pub")])
    assert isinstance(r.exception, FocusError) and lost in str(r.exception) and copied["image"] in str(r.exception)
    run_publish(PublishOptions(ann_file, {"template": glob}, tmp_path / "pub", allow_incomplete_shards=True))
    images = [row["image"] for rows in _published(tmp_path / "pub").values() for row in rows]
    assert lost not in images and images.count(copied["image"]) == 1     # the duplicate published once


def test_regenerate_takes_one_file_and_a_pattern_must_match(ann_file, tmp_path):
    shards = _shards(ann_file, tmp_path / "sh", n=2)
    with pytest.raises(FocusError, match="--regenerate appends to one descriptions file, not to 2 shards"):
        run_filter(shards, ann_file, tmp_path / "k.jsonl", regenerate=1)
    with pytest.raises(FocusError, match="no file matches"):
        run_filter(str(tmp_path / "nope-*.jsonl"), ann_file, tmp_path / "k.jsonl")
