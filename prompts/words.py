"""Pose facts and activities in words: the shared vocabulary of the LLM prompts and the template describer.

Two frames, kept apart in the wording: people are labelled by their place in the photo from the
viewer's side ("the person on the left", "the second person from the left"); body parts carry the
person's own side ("their left arm"), as MPII joint names do.
"""
from __future__ import annotations

from focusclip.data.geometry import PoseFacts
from focusclip.data.records import Annotation

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve")
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
POSITION_PHRASES = {"left": "on the left", "centre": "in the centre", "right": "on the right"}
DEPTH_PHRASES = {"front": "in the front", "middle": "in the middle distance", "back": "in the back"}
SIDES = (("left", "left"), ("right", "right"))


def number_word(n: int) -> str:
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def count_sentence(n: int) -> str:
    """'There is one person in the image' / 'There are three people in the image' (no full stop)."""
    return "There is one person in the image" if n == 1 else f"There are {number_word(n)} people in the image"


def activity_phrase(annotation: Annotation) -> str | None:
    """The MPII activity as a verb phrase after 'who is': 'curling', 'bicycling (mountain)',
    'doing yoga'. None when the activity is unknown. MPII names are '<activity>, <detail>, …'."""
    name = (annotation.activity or "").strip()
    if not name:
        return None
    head, _, rest = (part.strip() for part in name.partition(","))
    words = head.split()
    if not words:
        return None
    phrase = head if words[0].lower().endswith("ing") else f"doing {head}"
    if rest and len(rest) <= 30:
        phrase += f" ({rest})"
    return phrase


def activity_text(annotation: Annotation) -> str:
    """The activity as given to an LLM: full MPII name with its category."""
    if not annotation.activity:
        return "unknown"
    return f"{annotation.activity} ({annotation.category})" if annotation.category else annotation.activity


def ordinal(i: int) -> str:
    return ORDINALS[i] if 0 <= i < len(ORDINALS) else f"number {i + 1}"


def person_label(facts: PoseFacts, everyone: list[PoseFacts]) -> str:
    """How a person is named: 'the person' when alone; the image third when no one else shares it;
    else the rank from the viewer's left; 'person K' (record order) when nothing places them."""
    if len(everyone) == 1:
        return "the person"
    if facts.position and sum(f.position == facts.position for f in everyone) == 1:
        return f"the person {POSITION_PHRASES[facts.position]}"
    if facts.order is not None:
        # Not "the second person from the left": readers take "the second person" as record order.
        last = max(f.order for f in everyone if f.order is not None)
        if facts.order in (0, last):
            return "the leftmost person" if facts.order == 0 else "the rightmost person"
        return f"the person {ordinal(facts.order)} from the left"
    return f"person {facts.index + 1}"


def state_predicate(facts: PoseFacts) -> str | None:
    """'is sitting', 'is standing with their upper body leaning', 'has their upper body upright'."""
    torso = facts.torso
    if facts.state:
        if torso == "leaning":
            return f"is {facts.state} with their upper body leaning"
        return f"is {facts.state}"
    if torso:
        return f"has their upper body {torso}"
    return None


def _paired(facts: PoseFacts, field: str, noun: str, plural: str, keep=lambda side, v: True) -> list[tuple]:
    """(subject, verb, predicate) clauses for a left/right pair, merged as 'both …' when equal."""
    left, right = (getattr(facts, f"{side}_{field}") for side in ("left", "right"))
    left, right = (v if v and keep(side, v) else None for side, v in (("left", left), ("right", right)))
    if left and right and left == right:
        return [(f"both {plural}", "are", left)]
    return [(f"their {side} {noun}", "is", value) for side, value in (("left", left), ("right", right)) if value]


def fact_clauses(facts: PoseFacts, concise: bool = False) -> list[tuple[str, str, str]]:
    """Limb facts as (subject, verb, predicate): ('their left arm', 'is', 'raised'). `concise` drops what
    other facts imply: vertical or angled legs, a standing person's straight knees, and for a lowered
    arm its straight elbow and a hand at the hips or below."""
    if not concise:
        return (_paired(facts, "arm", "arm", "arms") + _paired(facts, "elbow", "elbow", "elbows")
                + _paired(facts, "hand", "hand", "hands") + _legs(facts)
                + _paired(facts, "leg", "leg", "legs") + _paired(facts, "knee", "knee", "knees"))
    lowered = lambda side: getattr(facts, f"{side}_arm") == "lowered"  # noqa: E731
    standing = facts.state == "standing"
    return (_paired(facts, "arm", "arm", "arms")
            + _paired(facts, "elbow", "elbow", "elbows", lambda s, v: not (lowered(s) and v == "straight"))
            + _paired(facts, "hand", "hand", "hands",
                      lambda s, v: not (lowered(s) and v in ("at hip height", "below the hips", "at chest height")))
            + _legs(facts)
            + _paired(facts, "leg", "leg", "legs", lambda s, v: v in ("horizontal", "raised"))
            + _paired(facts, "knee", "knee", "knees", lambda s, v: not (standing and v == "straight")))


def _legs(facts: PoseFacts) -> list[tuple]:
    return [("their legs", "are", facts.legs)] if facts.legs else []


def clause_text(clause: tuple[str, str, str], with_verb: bool = True) -> str:
    subject, verb, predicate = clause
    return f"{subject} {verb} {predicate}" if with_verb else f"{subject} {predicate}"
