"""The shared core: records, JSONL crash safety, atomic writes, error handling of console scripts."""
from __future__ import annotations

import json
import subprocess

import pytest

from focusclip.core.errors import FocusError
from focusclip.core.io import JsonlAppender, atomic_path, read_jsonl, repair_jsonl_tail
from focusclip.data.records import Annotation, Person, read_annotations, validate_annotation, write_annotations
from focusclip.core.sharding import parse_shard, take_shard
from focusclip.data.skeleton import BODY_PARTS, FLIP_PAIRS, JOINTS, flip_index
from tests.conftest import console_script


def test_skeleton_matches_mpii_readme_order():
    assert JOINTS[0] == "r_ankle" and JOINTS[9] == "head_top" and JOINTS[15] == "l_wrist"
    perm = flip_index()
    assert [perm[perm[i]] for i in range(16)] == list(range(16))
    for a, b in FLIP_PAIRS:
        assert JOINTS[a].replace("r_", "X_") == JOINTS[b].replace("l_", "X_")
    assert len(BODY_PARTS) == 10 and BODY_PARTS["torso"] == (6, 7, 12, 13, 2, 3)


def test_annotation_roundtrip(tmp_path):
    p = Person(id=0, center=[1.5, 2.0], scale=3.0, head_box=[0.0, 0.0, 4.0, 4.0])
    p.kpts[9] = [10.25, 20.5]
    p.kpts_vis[9] = 2
    rec = Annotation(image="a.jpg", split="val", width=64, height=48, activity_id=3,
                     category="sports", activity="curling, light", single_person=[0], people=[p])
    path = tmp_path / "annotations.jsonl"
    assert write_annotations(path, [rec]) == 1
    back = read_annotations(path)
    assert back == [rec]
    assert back[0].people[0].num_labelled == 1


def test_validation_names_the_problem(tmp_path):
    bad = {"image": "a.jpg", "split": "holdout", "people": []}
    assert "holdout" in validate_annotation(bad)
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(bad) + "\n")
    with pytest.raises(FocusError, match="record 1"):
        read_annotations(path)


def test_torn_tail_is_dropped_then_repaired(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3')
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    with JsonlAppender(path) as w:
        assert w.repaired
        w.write({"a": 4})
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}, {"a": 4}]
    assert not repair_jsonl_tail(path)


def test_bad_line_in_the_middle_is_an_error(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(FocusError, match="line 2"):
        read_jsonl(path)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_shards_partition_the_work():
    items = list(range(10))
    parts = [take_shard(items, parse_shard(f"{i}/3")) for i in range(3)]
    assert sorted(sum(parts, [])) == items
    for bad in ("3/3", "x", "1/0"):
        with pytest.raises(FocusError):
            parse_shard(bad)


@pytest.mark.parametrize("script", ["focus-data", "focus-train", "focus-eval"])
def test_console_scripts_have_help(script):
    out = subprocess.run([console_script(script), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "Usage" in out.stdout


def test_focus_data_help_lists_the_stages():
    out = subprocess.run([console_script("focus-data"), "--help"], capture_output=True, text=True).stdout
    for stage in ("convert", "heatmaps", "describe", "filter", "publish"):
        assert stage in out
