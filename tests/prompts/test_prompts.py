"""Filling the versioned prompt templates, and the shared wording of facts."""
from __future__ import annotations

import hashlib
import re

import pytest

from focusclip.core.errors import FocusError
from focusclip.data.geometry import image_facts
from focusclip.data.records import Annotation
from focusclip.prompts import available_prompts, build_prompt
from focusclip.prompts.fill import TEMPLATES_DIR, joint_words
from focusclip.prompts.words import activity_phrase, count_sentence, fact_clauses, person_label
from tests.data.test_geometry import STANDING, make_person, transform

RAISED_LEFT = {**STANDING, "l_elbow": (600, 110), "l_wrist": (640, 60)}


def annotation(*people_joints, activity="curling", category="sports", width=1280) -> Annotation:
    people = [make_person(j, pid=i) for i, j in enumerate(people_joints)]
    return Annotation(image="000000001.jpg", split="train", width=width, height=720, activity_id=1,
                      category=category, activity=activity, people=people)


def test_templates_are_versioned_files():
    assert "pose-v1" in available_prompts()
    assert (TEMPLATES_DIR / "pose-v1.system.txt").is_file() and (TEMPLATES_DIR / "pose-v1.user.txt").is_file()


def test_prompt_carries_activity_count_and_facts_and_hashes_the_filled_text():
    ann = annotation(RAISED_LEFT, transform(STANDING, lambda x, y: (x + 600, y)))
    p = build_prompt(ann)
    assert p.prompt_id == "pose-v1"
    assert p.sha == hashlib.sha256(f"{p.system}\n\n{p.user}".encode()).hexdigest()
    assert "There [is one person | are N people] in the image who [is | are] <activity>" in p.system
    assert "Activity: curling (sports)" in p.user and "Number of people: 2" in p.user
    lines = [ln for ln in p.user.splitlines() if ln.startswith("- ")]
    assert lines[0].startswith("- the person in the centre: is standing;")  # x ≈ 500 of 1280
    assert "their left arm is raised" in lines[0] and "their right arm is lowered" in lines[0]
    assert lines[1].startswith("- the person on the right: is standing;")
    assert not re.search(r"\d+\s*,\s*\d+", p.user)  # no coordinates unless asked
    assert [m["role"] for m in p.messages] == ["system", "user"]
    assert build_prompt(ann).sha == p.sha  # deterministic
    # A different pose is a different prompt (so a new key for the describer)
    assert build_prompt(annotation(STANDING, transform(STANDING, lambda x, y: (x + 600, y)))).sha != p.sha


def test_prompt_with_coordinates_uses_0_based_pixels():
    p = build_prompt(annotation(STANDING), with_coords=True)
    assert "left wrist (548, 290)" in p.user and "head top (500, 60)" in p.user
    assert "in a 1280x720 image" in p.user
    assert build_prompt(annotation(STANDING)).sha != p.sha


def test_unknown_prompt_is_a_user_error():
    with pytest.raises(FocusError, match="pose-v1"):
        build_prompt(annotation(STANDING), prompt_id="nope-v9")


@pytest.mark.parametrize("n,text", [(1, "There is one person in the image"),
                                    (3, "There are three people in the image"),
                                    (14, "There are 14 people in the image")])
def test_count_sentence(n, text):
    assert count_sentence(n) == text


@pytest.mark.parametrize("name,phrase", [("curling", "curling"), ("bicycling, mountain", "bicycling (mountain)"),
                                         ("yoga, Power", "doing yoga (Power)"), ("", None),
                                         ("sitting, talking in person, on the phone, computer, or text "
                                          "messaging, light effort", "sitting")])
def test_activity_phrase(name, phrase):
    assert activity_phrase(annotation(STANDING, activity=name)) == phrase


def test_person_labels_are_unique_and_in_the_viewers_frame():
    shifted = [transform(STANDING, lambda x, y, dx=dx: (x + dx, y)) for dx in (-400, -300, 100, 600)]
    ann = annotation(*shifted)  # x ≈ 100, 200, 600, 1100: two share the left third
    facts = image_facts(ann)
    labels = [person_label(f, facts) for f in facts]
    assert labels == ["the leftmost person", "the person second from the left", "the person in the centre",
                      "the person on the right"]
    assert person_label(image_facts(annotation(STANDING))[0], image_facts(annotation(STANDING))) == "the person"


def test_fact_clauses_merge_both_sides_and_concise_drops_implied_facts():
    f = image_facts(annotation(STANDING))[0]
    full = fact_clauses(f)
    assert ("both arms", "are", "lowered") in full and ("both elbows", "are", "straight") in full
    concise = fact_clauses(f, concise=True)
    assert ("both arms", "are", "lowered") in concise
    assert not any("elbow" in c[0] or "knee" in c[0] or "hand" in c[0] for c in concise)


def test_joint_words():
    assert [joint_words(n) for n in ("r_ankle", "l_wrist", "upper_neck")] == \
           ["right ankle", "left wrist", "upper neck"]
