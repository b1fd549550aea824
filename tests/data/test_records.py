"""Annotation records: a write/read round trip keeps every field; a bad record is an error naming it."""
from __future__ import annotations

import json

import pytest

from focusclip.core.errors import FocusError
from focusclip.data.records import Annotation, Person, read_annotations, validate_annotation, write_annotations


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
