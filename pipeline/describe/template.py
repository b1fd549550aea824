"""The offline `template` describer: the pose facts and the activity in varied, grammatical prose.

Deterministic given (seed, image). It says only what the facts say, in their exact words, so every
claim can be checked against the keypoints; variety comes from sentence frames, clause order and
connectives, not from synonyms that would blur the facts.
"""
from __future__ import annotations

import hashlib
import random

from focusclip.data.geometry import STATES, PoseFacts, image_facts
from focusclip.data.records import Annotation
from focusclip.prompts.words import (DEPTH_PHRASES, activity_phrase, clause_text, count_sentence, fact_clauses,
                           person_label, state_predicate)


def _rng(seed: int, image: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{image}".encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _join(items: list[str], rng: random.Random, verbs: bool = True) -> str:
    """'a', 'a and b', 'a, b and c' (full clauses may take 'while' before the last of two)."""
    if len(items) == 1:
        return items[0]
    last = " while " if verbs and len(items) == 2 and rng.random() < 0.3 else " and "
    return (", ".join(items[:-1]) if len(items) > 2 else items[0]) + last + items[-1]


def safe_activity(annotation: Annotation, facts: list[PoseFacts]) -> str | None:
    """The activity phrase, unless it opens with a posture ('sitting, talking …') that some person's
    keypoints contradict; then the next part of the MPII name, or nothing."""
    phrase = activity_phrase(annotation)
    if not phrase:
        return None
    head = phrase.split()[0].lower()
    if head in STATES and any(f.state and f.state != head for f in facts):
        parts = [p.strip() for p in annotation.activity.split(",")[1:]]
        rest = next((p for p in parts if p.split() and p.split()[0].endswith("ing")), None)
        return rest if rest and rest.split()[0].lower() not in STATES else None
    return phrase


def opening(annotation: Annotation, facts: list[PoseFacts], rng: random.Random) -> str:
    """'There is one person in the image who is curling.' and variants; the count phrase is fixed."""
    n, act = len(facts), safe_activity(annotation, facts)
    start = count_sentence(n)
    if not act:
        return start + "."
    be, pron = ("is", "they are") if n == 1 else ("are", "they are")
    frames = [f"{start} who {be} {act}.", f"{start}, and {pron} {act}.", f"{start}; {pron} {act}."]
    if n > 1:
        frames.append(f"{start}, all of them {act}.")
    return rng.choice(frames)


def _lead(label: str, facts: PoseFacts, rng: random.Random) -> str:
    """The sentence subject, sometimes with the depth: 'The person on the left, in the front,'."""
    if facts.depth and rng.random() < 0.6:
        return f"{_cap(label)}, {DEPTH_PHRASES[facts.depth]},"
    return _cap(label)


def person_sentences(facts: PoseFacts, everyone: list[PoseFacts], frame: int, rng: random.Random) -> str:
    """One person's facts in one to three sentences; `frame` picks the sentence frame."""
    clauses = fact_clauses(facts, concise=True)
    lead, pred = _lead(person_label(facts, everyone), facts, rng), state_predicate(facts)
    if not pred and not clauses:
        return ""
    first, rest = clauses[:2], clauses[2:]
    if not pred:
        out = [f"{lead} has {_join([clause_text(c, False) for c in first], rng, verbs=False)}."]
    elif not first:
        out = [f"{lead} {pred}."]
    elif frame % 3 == 0:
        out = [f"{lead} {pred}, with {_join([clause_text(c, False) for c in first], rng, verbs=False)}."]
    elif frame % 3 == 1:
        out = [f"{lead} {pred}.", _cap(_join([clause_text(c) for c in first], rng)) + "."]
    else:
        out = [f"{lead} {pred}; {_join([clause_text(c) for c in first], rng)}."]
    while rest:
        k = 3 if len(rest) in (3, 5) or rng.random() < 0.3 else 2
        chunk, rest = rest[:k], rest[k:]
        out.append(_cap(_join([clause_text(c) for c in chunk], rng)) + ".")
    return " ".join(out)


def template_description(annotation: Annotation, seed: int = 0) -> str:
    """The whole description: the count-and-activity sentence, then each person left to right."""
    rng = _rng(seed, annotation.image)
    facts = image_facts(annotation)
    parts = [opening(annotation, facts, rng)]
    start = rng.randrange(3)
    ordered = sorted(facts, key=lambda f: (f.order is None, f.order if f.order is not None else f.index))
    for i, f in enumerate(ordered):
        text = person_sentences(f, facts, start + i, rng)
        if text:
            parts.append(text)
    return " ".join(parts)
