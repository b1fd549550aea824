"""The checks for image-grounded describers' failure modes, through `run_filter` on files: planted answers
are rejected with their reason, good ones kept."""
from __future__ import annotations

import dataclasses

from focusclip.core.io import read_jsonl, write_jsonl
from focusclip.data.geometry import image_facts
from focusclip.pipeline.filter.stage import run_filter
from focusclip.data.records import Annotation, write_annotations
from tests.pipeline.describe.test_describe_vlm import person, standing

OPENING = "There are two people in the image who are doing yoga. "
GOOD = (OPENING + "The person on the left is standing on a mat in a sunny park, smiling, with both arms lowered. "
        "The person on the right, an adult in a white shirt, is standing with both arms lowered beside a black "
        "water bottle after the race.")
GOOD_2 = (OPENING + "The person on the left is standing in a gym in front of a mirror, with both arms lowered. "
          "The person on the right, a teenager, is standing calmly with both arms lowered.")

PLANTED = {   # text → (reason, words the reason quotes)
    "I can't see the image, but there are two people in the image who are doing yoga and both are standing.":
        ("no_image", "I can't see the image"),
    "No image was provided, so from the facts: there are two people in the image who are standing upright.":
        ("no_image", "No image was provided"),
    OPENING + "The Black woman on the left is standing with both arms lowered, and so is the other person.":
        ("excluded", "Black woman"),
    OPENING + "The person on the left, who appears to be Serena Williams, is standing with both arms lowered.":
        ("excluded", "Serena Williams"),
    OPENING + "The person on the right is of Asian descent and is standing with both arms lowered.":
        ("excluded", "of Asian descent"),
    OPENING + "The person in the red box is standing with both arms lowered, as is the other one.":
        ("marks", "red box"),
    OPENING + "The person marked 2 is standing with both arms lowered; the left one also stands.":
        ("marks", "marked 2"),
    OPENING + "The first person is standing with both arms lowered. The third person is sitting on a bench nearby.":
        ("unmarked", "The third person"),
    "There are three people in the image who are doing yoga, all standing with their arms lowered by the mat.":
        ("people_count", "three people"),
}


def _annotation(name: str) -> Annotation:
    return Annotation(name, "val", 1600, 1000, activity="yoga, Power", category="sports",
                      people=[person(0, standing(400, 200, 600)), person(1, standing(1200, 300, 500))])


def _filter(tmp_path, rows, anns):
    write_annotations(tmp_path / "ann.jsonl", anns)
    write_jsonl(tmp_path / "d.jsonl", rows)
    run_filter(tmp_path / "d.jsonl", tmp_path / "ann.jsonl", tmp_path / "k.jsonl")
    return list(read_jsonl(tmp_path / "k.jsonl")), list(read_jsonl(tmp_path / "k.rejected.jsonl"))


def _row(image, text, prompt_id="pose-vlm-v1", describer="Qwen2.5-VL-7B-Instruct"):
    return {"image": image, "describer": describer, "backend": "openai", "description": text,
            "prompt_id": prompt_id, "prompt_sha": f"sha-{image}", "finish_reason": "stop"}


def test_the_fixture_people_are_standing_with_lowered_arms():   # what GOOD says, from the keypoints
    facts = image_facts(_annotation("a.jpg"))
    assert [f.state for f in facts] == ["standing", "standing"]
    assert {f.left_arm for f in facts} == {f.right_arm for f in facts} == {"lowered"}


def test_planted_answers_are_rejected_with_their_reason_and_good_ones_kept(tmp_path):
    anns = [_annotation(f"{i:03d}.jpg") for i in range(len(PLANTED) + 2)]
    rows = [_row(a.image, t) for a, t in zip(anns, [GOOD, GOOD_2, *PLANTED])]
    kept, rejected = _filter(tmp_path, rows, anns)
    assert [r["description"] for r in kept] == [GOOD, GOOD_2]
    got = {r["description"]: (r["reason"], r["reason_detail"]) for r in rejected}
    assert set(got) == set(PLANTED)
    for text, (reason, quoted) in PLANTED.items():
        assert got[text][0] == reason, (text, got[text])
        assert quoted.lower() in got[text][1].lower(), got[text]


def test_the_same_text_for_different_photos_of_one_pose_is_rejected_only_for_image_grounded_prompts(tmp_path):
    anns = [_annotation("a.jpg"), _annotation("b.jpg"), _annotation("c.jpg"),   # one pose, three photos
            dataclasses.replace(_annotation("d.jpg"), people=[person(0, standing(400, 200, 600)),
                                                              person(1, standing(1200, 300, 300))])]
    rows = [_row("a.jpg", GOOD), _row("b.jpg", GOOD), _row("c.jpg", GOOD_2), _row("d.jpg", GOOD_2)]
    rows += [_row(r["image"], r["description"], "pose-v1", "Qwen2.5-7B-Instruct") for r in rows[:2]]
    kept, rejected = _filter(tmp_path, rows, anns)
    assert sorted((r["image"], r["reason"]) for r in rejected if r["prompt_id"] == "pose-vlm-v1"
                  and r["reason"] == "ignores_image") == [("a.jpg", "ignores_image"), ("b.jpg", "ignores_image")]
    assert "b.jpg" in next(r for r in rejected if r["image"] == "a.jpg")["reason_detail"]
    # c.jpg and d.jpg share a text, but d.jpg's people differ (one is further back): not one pose
    assert image_facts(anns[3]) != image_facts(anns[2])
    assert {(r["image"], r["prompt_id"]) for r in kept} == {("c.jpg", "pose-vlm-v1"), ("d.jpg", "pose-vlm-v1"),
                                                             ("a.jpg", "pose-v1"), ("b.jpg", "pose-v1")}
