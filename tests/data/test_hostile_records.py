"""Annotation records are hostile until checked (docs/design.md §3.1): every kind of bad record a
downloaded or hand-edited file can hold is one line naming the record — never a traceback, never a
40 GB allocation, never a blank heatmap written as if it were one."""
from __future__ import annotations

import copy
import json
import math
import subprocess

import numpy as np
import pytest

from focusclip.core.errors import FocusError
from focusclip.core.io import read_json, read_jsonl
from focusclip.data.records import MAX_IMAGE_SIDE, read_annotations, validate_annotation
from tests.conftest import console_script

GOOD = {"image": "a.jpg", "split": "train", "width": 64, "height": 48, "video_id": None, "video_frame": None,
        "activity_id": 3, "category": "sports", "activity": "curling", "single_person": [0],
        "people": [{"id": 0, "center": [30.0, 24.0], "scale": 0.2, "head_box": [25.0, 2.0, 35.0, 10.0],
                    "kpts": [[10.0 + 2 * j, 5.0 + 2 * j] for j in range(16)], "kpts_vis": [2] * 16}]}
DEEP = "[" * 200_000 + "]" * 200_000


def _with(path: str, value) -> dict:
    """GOOD with one field replaced: `path` like 'width' or 'people.0.kpts.3'."""
    d = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = d
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    node[int(last) if isinstance(node, list) else last] = value
    return d


HOSTILE = {   # what the record holds → a word the reason must contain
    "image-not-a-string": (_with("image", 7), "image"),
    "people-not-a-list": (_with("people", {"0": 1}), "people"),
    "person-not-an-object": (_with("people", ["x"]), "not an object"),
    "kpts-a-string": (_with("people.0.kpts", "0,0"), "kpts"),
    "kpts-pair-of-strings": (_with("people.0.kpts.3", ["1", "2"]), "kpts"),
    "vis-a-bool": (_with("people.0.kpts_vis.2", True), "visibility"),
    "width-nan": (_with("width", math.nan), "width"),
    "width-float": (_with("width", 64.5), "width"),
    "height-huge": (_with("height", 100_000), str(MAX_IMAGE_SIDE)),
    "center-infinite": (_with("people.0.center", [math.inf, 3.0]), "center"),
    "scale-nan": (_with("people.0.scale", math.nan), "scale"),
    "scale-negative": (_with("people.0.scale", -1.0), "scale"),
    "head-box-nan": (_with("people.0.head_box", [1.0, 2.0, math.nan, 4.0]), "head_box"),
    "joint-nan": (_with("people.0.kpts.5", [math.nan, 3.0]), "non-finite"),
    "single-person-out-of-range": (_with("single_person", [4]), "single_person"),
    "id-a-string": (_with("people.0.id", "0"), "id"),
}


def test_the_good_record_is_sound():
    assert validate_annotation(GOOD) is None
    assert validate_annotation(_with("width", None)) is None          # unknown sizes stay allowed
    assert validate_annotation(_with("people.0.scale", None)) is None
    assert validate_annotation(_with("people.0.kpts.5", [math.nan, math.nan]) | {}) is not None
    unlabelled = _with("people.0.kpts_vis.5", 0)
    unlabelled["people"][0]["kpts"][5] = [-1.0, -1.0]
    assert validate_annotation(unlabelled) is None


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_each_hostile_record_kind_is_refused_with_its_reason(case, tmp_path):
    record, word = HOSTILE[case]
    why = validate_annotation(record)
    assert why is not None and word in why, why
    path = tmp_path / "ann.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(record) + "\n")   # json writes NaN/Infinity as Python reads them
    with pytest.raises(FocusError, match=r"record 2 \("):
        read_annotations(path)


def test_nesting_too_deep_is_one_error_not_a_recursion_error(tmp_path):
    lines = tmp_path / "deep.jsonl"
    lines.write_text(json.dumps(GOOD) + "\n" + DEEP + "\n")
    with pytest.raises(FocusError, match="line 2: nested too deeply"):
        read_jsonl(lines)
    whole = tmp_path / "deep.json"
    whole.write_text(DEEP)
    with pytest.raises(FocusError, match="nested too deeply"):
        read_json(whole)


def test_a_descriptions_file_given_as_annotations_says_so(tmp_path):
    path = tmp_path / "template.kept.jsonl"
    path.write_text(json.dumps({"image": "a.jpg", "describer": "template", "backend": "template",
                                "description": "One person.", "prompt_id": "pose-v1", "prompt_sha": "ab"}) + "\n")
    with pytest.raises(FocusError, match="this is a descriptions file .*focus-data convert"):
        read_annotations(path)


# ------------------------------------------------------------------ through the real console scripts


def _run(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([console_script("focus-data"), *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def _one_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if not ln.startswith(("heatmaps", "describe"))]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    return lines[0]


@pytest.mark.parametrize("case", ["kpts-a-string", "people-not-a-list", "image-not-a-string", "width-nan",
                                  "height-huge", "scale-nan"])
def test_describe_refuses_hostile_records_in_one_line(case, tmp_path):
    ann = tmp_path / "ann.jsonl"
    ann.write_text(json.dumps(GOOD) + "\n" + json.dumps(HOSTILE[case][0]) + "\n")
    line = _one_line(_run("describe", ann, "-o", tmp_path / "d" / "t.jsonl"))
    assert "record 2" in line and HOSTILE[case][1] in line
    assert not (tmp_path / "d").exists()


def test_describe_refuses_deep_nesting_in_one_line(tmp_path):
    ann = tmp_path / "ann.jsonl"
    ann.write_text(DEEP + "\n")
    assert "nested too deeply" in _one_line(_run("describe", ann, "-o", tmp_path / "t.jsonl"))


def test_publish_refuses_a_nan_size_before_writing(tmp_path):
    ann = tmp_path / "ann.jsonl"
    ann.write_text(json.dumps(_with("width", math.nan)) + "\n")
    desc = tmp_path / "t.jsonl"
    desc.write_text(json.dumps({"image": "a.jpg", "describer": "template", "backend": "template",
                                "description": "One person.", "prompt_id": "pose-v1", "prompt_sha": "ab"}) + "\n")
    line = _one_line(_run("publish", "--annotations", ann, "--descriptions", f"template={desc}",
                          "-o", tmp_path / "pub"))
    assert "width" in line and "record 1" in line
    assert not (tmp_path / "pub").exists()


def test_an_image_name_with_escape_sequences_is_printed_escaped(tmp_path):
    ann = tmp_path / "ann.jsonl"
    hostile = _with("image", "\x1b]0;pwned\x07\x1b[2Ja.jpg")
    hostile["people"][0]["kpts"] = "x"
    ann.write_text(json.dumps(hostile) + "\n")
    line = _one_line(_run("describe", ann, "-o", tmp_path / "t.jsonl"))
    assert "\x1b" not in line and "\x07" not in line
    assert "\\x1b]0;pwned\\x07" in line


@pytest.fixture
def images(tmp_path):
    import cv2

    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), np.full((48, 64, 3), 120, np.uint8))
    return folder


def test_heatmaps_counts_deep_nesting_and_refuses_a_huge_claimed_size(tmp_path, images):
    ann = tmp_path / "ann.jsonl"
    huge = _with("width", 100_000) | {"height": 100_000}
    ann.write_text(DEEP + "\n" + json.dumps(huge) + "\n")
    r = _run("heatmaps", ann, "--images", images, "-o", tmp_path / "hm", "--device", "cpu")
    line = _one_line(r)    # nothing renderable: one line with the reasons, nothing allocated
    assert "1 bad record" in line and f"1 image over {MAX_IMAGE_SIDE} px" in line
    assert not (tmp_path / "hm").exists()


def test_heatmaps_given_a_descriptions_file_refuses_with_the_right_advice(tmp_path, images):
    desc = tmp_path / "template.kept.jsonl"
    desc.write_text(json.dumps({"image": "a.jpg", "describer": "template", "backend": "template",
                                "description": "One person.", "prompt_id": "pose-v1", "prompt_sha": "ab"}) + "\n")
    line = _one_line(_run("heatmaps", desc, "--images", images, "-o", tmp_path / "hm", "--device", "cpu"))
    assert "descriptions file" in line and "focus-data convert" in line
    assert not (tmp_path / "hm").exists()


def test_heatmaps_skips_a_record_with_no_person_instead_of_a_blank_png(tmp_path, images):
    ann = tmp_path / "ann.jsonl"
    ann.write_text(json.dumps(_with("people", []) | {"single_person": []}) + "\n")
    line = _one_line(_run("heatmaps", ann, "--images", images, "-o", tmp_path / "hm", "--device", "cpu"))
    assert "1 no person" in line
    assert not (tmp_path / "hm").exists()


@pytest.mark.parametrize("command", ["filter", "publish"])
def test_an_annotations_file_given_as_descriptions_says_so(command, tmp_path):
    ann = tmp_path / "annotations.jsonl"
    ann.write_text(json.dumps(GOOD) + "\n")
    args = (["filter", ann, "--annotations", ann, "-o", tmp_path / "k.jsonl"] if command == "filter" else
            ["publish", "--annotations", ann, "--descriptions", f"t={ann}", "-o", tmp_path / "pub"])
    line = _one_line(_run(*args))
    assert "this is an annotations file" in line and "focus-data describe" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotations.jsonl"]
