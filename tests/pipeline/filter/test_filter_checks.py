"""Each text check alone: a description that passes and one that fails, for every reason."""
from __future__ import annotations

import pytest

from focusclip.core.errors import FocusError
from focusclip.data.records import Annotation, Person
from focusclip.pipeline.filter.checks import (CHECKS, CheckContext, FilterConfig, check_empty, check_leak, check_length,
                                    check_people_count, check_refusal, check_repetition, check_truncated,
                                    config_with)
from focusclip.pipeline.filter.checks import trigram_limit
from focusclip.pipeline.filter.claims import arm_claims, people_count_claim, person_scopes, posture_claims
from focusclip.pipeline.filter.text_metrics import ngram_repetition, words

GOOD = ("There is one person in the image who is curling. The person is standing, with their left arm "
        "lowered and their right arm horizontal. Their left elbow is straight.")


def _ctx(n_people: int = 1, **cfg) -> CheckContext:
    people = [Person(id=i) for i in range(n_people)]
    return CheckContext(Annotation(image="x.jpg", split="train", people=people), FilterConfig(**cfg))


def _rec(text, finish_reason="stop") -> dict:
    return {"image": "x.jpg", "describer": "t", "prompt_sha": "s", "description": text,
            "finish_reason": finish_reason}


def test_good_description_passes_every_text_check():
    for check in (check_empty, check_refusal, check_truncated, check_length, check_leak, check_repetition,
                  check_people_count):
        assert check(_rec(GOOD), _ctx()) is None, check.__name__


@pytest.mark.parametrize("record,part", [
    ({"image": "x.jpg"}, "no description"),
    (_rec(""), "blank"),
    (_rec("  \n ... "), "blank"),
    (_rec(None), "no description"),
    (_rec(["a list"]), "not text"),
])
def test_empty(record, part):
    assert part in check_empty(record, _ctx())


@pytest.mark.parametrize("text", [
    "I'm sorry, but I can't help with identifying people in images.",
    "I cannot describe this image because the keypoints are missing.",
    "As an AI language model, I do not see images.",
    "Unfortunately, the pose is unclear.",
    "I apologize for the confusion. There is one person.",
    "I am unable to provide a description.",
])
def test_refusal_rejected(text):
    assert check_refusal(_rec(text), _ctx()).startswith("refusal")


def test_refusal_passes_third_person_prose():
    text = "The person cannot be seen fully; they are sorry-looking and hold an AI sign."
    assert check_refusal(_rec(text), _ctx()) is None


def test_truncated():
    assert "max_tokens" in check_truncated(_rec(GOOD, finish_reason="length"), _ctx())
    assert "unfinished" in check_truncated(_rec("There is one person in the image who is standing with their"),
                                           _ctx())
    assert "unfinished" in check_truncated(_rec("The person is standing,"), _ctx())
    # Closing quotes and brackets after the full stop are fine.
    assert check_truncated(_rec('They say "hello."'), _ctx()) is None
    assert check_truncated(_rec("They stand (upright)."), _ctx()) is None
    assert check_truncated(_rec("Is it a person?"), _ctx()) is None


def test_length_bounds():
    assert "fewer than min_words=12" in check_length(_rec("There is one person."), _ctx())
    long = " ".join(["word"] * 601) + "."
    assert "more than max_words=600" in check_length(_rec(long), _ctx())
    assert check_length(_rec(long), _ctx(max_words=700)) is None
    assert check_length(_rec("There is one person."), _ctx(min_words=4)) is None


@pytest.mark.parametrize("text,hit", [
    ("Their left wrist is at (619, 393).", "(619, 393)"),
    ("Their left wrist is at [619.0, 393.5].", "[619.0, 393.5]"),
    ("The wrist has x=619 in the frame.", "x=6"),
    ("The hand is 40 px above the shoulder.", "40 px"),
    ("The head top is at 982.7591 and below it the neck.", "982.7591"),
    ("Based on the keypoints, the person is standing.", "keypoints"),
    ("Joint 7 is above joint 6.", "Joint 7"),
    ("The r_wrist is raised.", "r_wrist"),
    ("Their coordinates show a raised arm.", "coordinates"),
])
def test_leak_rejected(text, hit):
    assert repr(hit) in check_leak(_rec(text), _ctx())


def test_leak_passes_ordinary_numbers():
    text = "There are 3 people in the image, two of them about 1.5 metres apart, playing 18 holes of golf."
    assert check_leak(_rec(text), _ctx()) is None


def test_repetition_loop_rejected():
    loop = "There is one person in the image. " + "The person is standing with their left arm lowered. " * 4
    assert "appears 4 times" in check_repetition(_rec(loop), _ctx())
    # 3-gram repetition without identical sentences: a phrase cycling inside one sentence.
    cyc = "The person is " + "raising and lowering and raising and lowering " * 6 + "their arm."
    assert "3-gram repetition" in check_repetition(_rec(cyc), _ctx())


def test_trigram_limit_grows_with_people():
    cfg = FilterConfig()
    # 0.5 + 0.5 · (k − 1)/k: 1 → 0.5, 2 → 0.75, 3 → 0.8333
    assert [round(trigram_limit(cfg, k), 4) for k in (0, 1, 2, 3)] == [0.5, 0.5, 0.75, 0.8333]
    # Three people described alike: the same clauses three times (two identical halves can never pass
    # 0.5: about half their 3-grams are new).
    one = ("is sitting with both arms lowered and both knees bent at a right angle while their legs "
           "are together and their left elbow is slightly bent")
    text = (f"There are three people in the image. The leftmost person {one}. The person in the centre "
            f"{one}. The rightmost person {one}.")
    rep = ngram_repetition(words(text), 3)
    assert 0.5 < rep < 0.8333
    assert check_repetition(_rec(text), _ctx(3)) is None
    assert "3-gram repetition" in check_repetition(_rec(text), _ctx(1))


def test_repetition_allows_people_who_share_a_pose():
    # Three people with the same hands: the sentence thrice is a fact, not a loop (one per person).
    text = ("There are three people in the image. The leftmost person is standing. Both hands are at hip "
            "height. The person second from the left is standing. Both hands are at hip height. The "
            "rightmost person is standing. Both hands are at hip height.")
    assert check_repetition(_rec(text), _ctx(3)) is None
    assert "appears 3 times" in check_repetition(_rec(text), _ctx(2))


@pytest.mark.parametrize("text,n", [
    ("There is one person in the image who is running.", 1),
    ("There is a person in the image.", 1),
    ("There are two people in the image.", 2),
    ("The image shows 3 people playing volleyball.", 3),
    ("There are no people in the image.", 0),
    ("Nobody is visible in the picture.", 0),
    ("The photo shows a group of five people.", 5),
    ("Two individuals are visible near the lake.", 2),
    ("There are twelve young people in the image.", 12),
])
def test_people_count_claim(text, n):
    assert people_count_claim(text)[0] == n


@pytest.mark.parametrize("text", [
    "One person is standing while the other sits.",      # a subset, not the count
    "There is a group of people behind a fence.",        # no number
    "There is one other person nearby.",                 # someone else
    "The person is standing with their arms raised.",
])
def test_people_count_no_claim(text):
    assert people_count_claim(text) is None


def test_people_count_check():
    two = "There are two people in the image. The person on the left is standing."
    assert check_people_count(_rec(two), _ctx(2)) is None
    assert "says 2" in check_people_count(_rec(two), _ctx(1))
    assert "annotation has 3" in check_people_count(_rec(two), _ctx(3))
    assert "says 1" in check_people_count(_rec("There is a person. They stand."), _ctx(2))
    assert "says 0" in check_people_count(_rec("There is nobody in the image."), _ctx(1))
    # The first declaration counts; a later "one person" about a subset does not.
    text = "There are two people in the image. There is one person on the left who is sitting."
    assert check_people_count(_rec(text), _ctx(2)) is None


def test_arm_claims_parsed():
    text = ("The person on the left is standing with their left arm raised above their head. Their right "
            "hand hangs down. The person on the right is raising her right arm; both arms are not lowered. "
            "Person 3 has their left arm held high and their right hand at shoulder height.")
    got = {(c.side, c.level, c.person) for c in arm_claims(text)}
    assert got == {
        ("left", "raised above the head", ("position", "left")),
        ("right", "lowered", ("position", "left")),
        ("right", "raised", ("position", "right")),       # "both arms are not lowered" is negated
        ("left", "raised", ("index", 2)),
        ("right", "horizontal", ("index", 2)),
    }


def test_posture_claims_parsed():
    text = ("There are two people. The leftmost person is sitting on a bench next to a standing lamp. "
            "The rightmost person stands upright rather than kneeling. In the sitting room nobody is lying.")
    got = [(c.state, c.person) for c in posture_claims(text)]
    # "standing lamp", "sitting room" are no postures; "rather than kneeling" and "nobody is lying"
    # are negated; the last sentence names no one but keeps the rightmost person's scope.
    assert got == [("sitting", ("order", 0)), ("standing", ("order", "last"))]


@pytest.mark.parametrize("text,states", [
    ("He is standing with his hands on his knees.", ["standing"]),   # hands on knees: no kneeling
    ("She is down on one knee.", ["kneeling"]),
    ("They lie on their back on the grass.", ["lying"]),
    ("The ball lies on the grass near the long-standing fence.", []),
    ("The crowd gives a standing ovation.", []),
    ("The person is not sitting; they never knelt.", []),
])
def test_posture_phrases(text, states):
    assert [c.state for c in posture_claims(text)] == states


@pytest.mark.parametrize("text,claims", [
    ("His left arm is slightly raised.", [("left", "horizontal")]),     # hedged: one rank only
    ("Her right arm is extended downward.", [("right", "lowered")]),
    ("The left arm is up against the wall.", []),
    ("Their left arm and right arm are raised.", [("right", "raised")]),  # the left one is missed
    ("Without lifting his right hand, he waves.", []),
])
def test_arm_phrases(text, claims):
    assert [(c.side, c.level) for c in arm_claims(text)] == claims


def test_person_scopes_follow_labels():
    text = ("There are three people. The first person is standing. They wave. The person second from the left "
            "sits. Both people smile. The person in the centre kneels.")
    assert [ref for _, ref in person_scopes(text)] == [
        None, ("index", 0), ("index", 0), ("order", 1), None, ("position", "centre")]
    assert person_scopes("The person in the middle of the image sits.")[0][1] == ("position", "centre")
    assert person_scopes("The person on the left of the man sits.")[0][1] is None


def test_config_with_overrides():
    cfg = config_with(["max_words=400", "scope_by_person=false", "max_trigram_repetition=0.3",
                       "compatible_postures=sitting:kneeling,sitting:lying"])
    assert cfg.max_words == 400 and cfg.scope_by_person is False and cfg.max_trigram_repetition == 0.3
    assert cfg.compatible_postures == (("sitting", "kneeling"), ("sitting", "lying"))
    assert config_with(["compatible_postures="]).compatible_postures == ()
    with pytest.raises(FocusError, match="does not set a filter threshold"):
        config_with(["nonsense=1"])
    with pytest.raises(FocusError, match="not a valid value for max_words"):
        config_with(["max_words=many"])
    with pytest.raises(FocusError, match="not a valid value"):
        config_with(["scope_by_person=maybe"])


def test_check_names_are_the_documented_ones():
    assert list(CHECKS) == ["empty", "no_image", "refusal", "reasoning", "truncated", "length", "leak",
                            "repetition", "excluded", "marks", "ignores_image", "people_count", "unmarked",
                            "structured", "posture", "arms"]
