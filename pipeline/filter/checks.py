"""The filter's checks: each a small function `(record, context) -> None | reason`.

None keeps the description; a string says why it is rejected (one line, quoting the offending part).
The loop in `stage.py` runs them in CHECKS order and stops at the first reason, so the cheap
text checks run before the geometry ones.
"""
from __future__ import annotations

import dataclasses
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from focusclip.core.errors import fail
from focusclip.data.geometry import STATES, PoseFacts, image_facts
from focusclip.data.records import Annotation
from focusclip.data.skeleton import JOINTS
from focusclip.pipeline.filter.claims import (ARM_LEVELS, ArmClaim, PostureClaim, Ref, arm_claims, people_count_claim,
                                    person_refs, posture_claims)
from focusclip.pipeline.filter.text_metrics import ngram_repetition, sentences, words


@dataclass(frozen=True)
class FilterConfig:
    """Thresholds of the checks (`--set KEY=VALUE`). The defaults keep all of the offline template
    describer's output on generated data (3784 of 3784 descriptions, 17–198 words) and any answer
    that fits a 512-token limit, while rejecting what LLMs get wrong: refusals, cut-off answers,
    loops, echoed prompt data and claims the keypoints contradict."""
    min_words: int = 12             # shorter says too little to train on (one bare sentence)
    max_words: int = 600            # longer than a 512-token answer can be: something ran away
    # Share of a text's word 3-grams that repeat an earlier one (1 − distinct/total), for one person
    # (more people may repeat more, see trigram_limit). The template describer stays below 0.15 for
    # one person and 0.51 for three alike; a looping generation goes towards 1.
    max_trigram_repetition: float = 0.5
    repetition_min_words: int = 30  # shorter texts have too few 3-grams to judge
    # The same sentence (normalised) more often than this, or than the image has people (several
    # people may share a pose, "Both hands are at hip height."), is a loop.
    max_sentence_repeats: int = 2
    # Arm claims contradict the keypoints when their ranks in data/geometry.py ARMS (lowered 0,
    # horizontal 1, raised 2, above the head 3) differ by at least this: "raised" vs "lowered"
    # is rejected, "raised" vs "horizontal" (a matter of degrees) is not.
    arm_level_gap: int = 2
    # Posture pairs that 2D keypoints cannot tell apart reliably (sitting on the heels looks like
    # kneeling), so a text saying one where the keypoints say the other is not rejected.
    compatible_postures: tuple[tuple[str, str], ...] = (("sitting", "kneeling"),)
    # Attribute a sentence to the person it names ("the first person", "person 2", "the person on
    # the left", "the leftmost person"); off: a claim only has to fit any one of the image's people.
    scope_by_person: bool = True


def config_with(overrides: list[str] | tuple[str, ...], base: FilterConfig = FilterConfig()) -> FilterConfig:
    """`base` with `KEY=VALUE` overrides (`--set max_words=400`); an unknown key or a bad value is a
    user error. `compatible_postures` takes pairs as `sitting:kneeling,sitting:lying` (empty: none)."""
    fields = {f.name: f for f in dataclasses.fields(FilterConfig)}
    changes = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or key not in fields:
            raise fail(f"'{item}' does not set a filter threshold", "--set",
                       f"use KEY=VALUE with KEY one of {', '.join(fields)}")
        default = getattr(base, key)
        try:
            if isinstance(default, bool):
                if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(raw)
                changes[key] = raw.lower() in ("true", "1", "yes")
            elif isinstance(default, (int, float)):
                changes[key] = type(default)(raw)
            else:
                changes[key] = tuple(tuple(p.split(":")) for p in raw.split(",") if p.strip())
                if any(len(p) != 2 for p in changes[key]):
                    raise ValueError(raw)
        except ValueError:
            raise fail(f"'{raw}' is not a valid value for {key} (default {default!r})", "--set",
                       "give a value of the default's type") from None
    return dataclasses.replace(base, **changes)


@dataclass
class CheckContext:
    """What the checks may look at besides the record: its annotation, the pose facts (computed once,
    on first use) and the thresholds."""
    annotation: Annotation
    config: FilterConfig = field(default_factory=FilterConfig)
    _facts: list[PoseFacts] | None = None
    # (describer, prompt_id, normalised text) → the images of one pose given that text (`same_text_groups`)
    echoes: dict[tuple, set[str]] = field(default_factory=dict)

    @property
    def facts(self) -> list[PoseFacts]:
        if self._facts is None:
            self._facts = image_facts(self.annotation)
        return self._facts


Check = Callable[[dict, CheckContext], "str | None"]


def _text(record: dict) -> str:
    d = record.get("description")
    return d if isinstance(d, str) else ""


def check_empty(record: dict, ctx: CheckContext) -> str | None:
    d = record.get("description")
    if d is None:
        return "no description field"
    if not isinstance(d, str):
        return f"description is a {type(d).__name__}, not text"
    return "description is blank" if not words(d) else None


_REFUSAL = re.compile(
    r"\bI(?:'m| am) (?:sorry|unable|not able|afraid I)|\bI (?:cannot|can't|can not|could not|couldn't|"
    r"won't be able|am not able|do not have|don't have|apologi[sz]e)\b|\bas an AI\b|"
    r"\b(?:an AI|a) language model\b|^\s*(?:sorry|unfortunately)\b|\bI'm an AI\b|"
    r"\bcannot (?:assist|help) with\b|\bunable to (?:provide|assist|help|view|see) (?:a |the |this |with |you)",
    re.I)


# A model that did not get, or could not read, the picture: in the first or the third person
_NO_IMAGE = re.compile(
    r"\b(?:I|we) (?:can ?not|can't|cannot|am unable to|am not able to|'m unable to|'m not able to|do not|don't) "
    r"(?:see|view|access|open|load|process|analy[sz]e|look at|make out) (?:the |this |that |any |an )?"
    r"(?:image|picture|photo(?:graph)?|attachment|visual)s?\b"
    r"|\b(?:no|without (?:an?|the|any)) (?:image|picture|photo(?:graph)?|visual)s? (?:was |were |is |are |has been )?"
    r"(?:provided|attached|included|shared|available|given|uploaded)\b"
    r"|\b(?:the |this )?(?:image|picture|photo(?:graph)?) (?:is|was|appears to be|seems to be) (?:not |un)"
    r"(?:available|visible|provided|attached|loaded|readable|clear enough to)"
    r"|\b(?:image|picture|photo(?:graph)?) (?:could|did) not (?:be )?(?:load|loaded|open|opened|display|displayed)\b"
    r"|\b(?:based|relying) (?:only |solely )?on the (?:provided |given )?(?:facts|description|information|text) "
    r"(?:alone|only|since|as)\b",
    re.I)


def check_no_image(record: dict, ctx: CheckContext) -> str | None:
    """Refusals peculiar to images: "I can't see the image", "no image was provided", "the image is not
    available" (run before `refusal`, so the reason says the model did not see the picture)."""
    m = _NO_IMAGE.search(_text(record))
    return f"did not see the image: {m.group(0).strip()!r}" if m else None


def check_refusal(record: dict, ctx: CheckContext) -> str | None:
    """Descriptions are third person; "I cannot", "I'm sorry", "as an AI" are the model speaking."""
    m = _REFUSAL.search(_text(record))
    return f"refusal or apology: {m.group(0).strip()!r}" if m else None


# Reasoning markup describe did not remove (an unclosed <think> of an answer cut off while thinking, a
# model's other tags): DeepSeek-R1/Qwen3 <think>, <thinking>, <reasoning>, gpt-oss' <|channel|>, Kimi's ◁think▷
_REASONING = re.compile(r"</?think(?:ing)?>|</?reasoning>|<\|(?:channel|start|message)\|>|◁/?think▷", re.I)


def check_reasoning(record: dict, ctx: CheckContext) -> str | None:
    """A reasoning model's thinking left in the text, not a description."""
    m = _REASONING.search(_text(record))
    return f"reasoning text: {m.group(0)!r} at character {m.start()}" if m else None


_CLOSERS = "\"'”’)]*_ \n\t"


def check_truncated(record: dict, ctx: CheckContext) -> str | None:
    """Cut off by the token limit (finish_reason "length") or ending mid-sentence."""
    if record.get("finish_reason") == "length":
        return "finish_reason is 'length': the answer hit max_tokens"
    text = _text(record).rstrip(_CLOSERS)
    if text and text[-1] not in ".!?…":
        return f"last sentence is unfinished: '…{text[-40:]}'"
    return None


def check_length(record: dict, ctx: CheckContext) -> str | None:
    n, cfg = len(words(_text(record))), ctx.config
    if n < cfg.min_words:
        return f"{n} words, fewer than min_words={cfg.min_words}"
    if n > cfg.max_words:
        return f"{n} words, more than max_words={cfg.max_words}"
    return None


_SNAKE_JOINTS = "|".join(JOINTS) + r"|kpts(?:_vis)?|joints?_vis|is_visible|objpos|annopoints|head_box"
_LEAK = re.compile(
    r"[(\[]\s*-?\d+(?:\.\d+)?\s*,\s*-?\d+(?:\.\d+)?\s*[)\]]"          # (619, 393) or [619.0, 393.0]
    r"|\b[xy]\s*[=:]\s*-?\d"                                          # x=619, y: 393
    r"|\b\d+(?:\.\d+)?\s*(?:px|pixels?)\b"                            # 40 px
    r"|\b\d{3,}\.\d+\b"                                               # 393.0, 982.7591
    r"|\bcoordinates?\b|\bkey ?points?\b|\bkeypoint\b"                # talks about the input data
    r"|\b(?:joint|keypoint) ?(?:id|index|number|no\.?|#)? ?#?\d{1,2}\b"  # joint 7, keypoint #12
    rf"|\b(?:{_SNAKE_JOINTS})\b",
    re.I)


def check_leak(record: dict, ctx: CheckContext) -> str | None:
    """Raw numbers or field names from the prompt: coordinates, pixel values, joint ids, snake_case names."""
    m = _LEAK.search(_text(record))
    return f"leaks raw keypoint data: {m.group(0)!r}" if m else None


def check_repetition(record: dict, ctx: CheckContext) -> str | None:
    text, cfg = _text(record), ctx.config
    norm = [" ".join(words(s)) for s in sentences(text)]
    sent, times = Counter(norm).most_common(1)[0] if norm else ("", 0)
    if times > max(cfg.max_sentence_repeats, len(ctx.annotation.people)):
        return f"the sentence '{sent[:60]}' appears {times} times"
    toks = words(text)
    if len(toks) >= cfg.repetition_min_words:
        rep, limit = ngram_repetition(toks, 3), trigram_limit(cfg, len(ctx.annotation.people))
        if rep > limit:
            return f"3-gram repetition {rep:.2f} > {limit:.2f}"
    return None


def trigram_limit(cfg: FilterConfig, n_people: int) -> float:
    """The 3-gram repetition allowed for a description of `n_people`: k people alike in pose share
    every phrase, so up to (k−1)/k of the text may repeat; the limit moves from
    `max_trigram_repetition` towards 1 by that share (1 person 0.5, 2 people 0.75, 3 people 0.83)."""
    k = max(1, n_people)
    return cfg.max_trigram_repetition + (1 - cfg.max_trigram_repetition) * (k - 1) / k


def check_people_count(record: dict, ctx: CheckContext) -> str | None:
    claim = people_count_claim(_text(record))
    n = len(ctx.annotation.people)
    if claim and claim[0] != n:
        return f"says {claim[0]} ({claim[1]!r}) but the annotation has {n}"
    return None


# What the default prompts exclude (prompts/templates/*.system.txt): race, ethnicity, skin colour,
# religion, and who a person is. Colour words count only next to a person noun ("a white shirt" is fine);
# bare "race" is a sports event, so only "of … race", "racial", "ethnicity" and the like.
_PERSON = r"(?:man|men|woman|women|person|people|boy|girls?|boys|child|children|kids?|guy|guys|lady|ladies|" \
          r"gentleman|gentlemen|individuals?|teen(?:ager)?s?|adults?|players?|athletes?|figure)"
_EXCLUDED = re.compile(
    rf"(?i:\b(?:black|white|brown|dark[- ]skinned|light[- ]skinned|fair[- ]skinned|olive[- ]skinned) {_PERSON}\b"
    r"|\bskin (?:tone|colou?r|complexion)\b|\b(?:dark|light|fair|pale|olive|tan) complexion\b"
    r"|\b(?:caucasian|hispanic|latin[oax]s?|african[- ]americans?|asian[- ]americans?|middle[- ]eastern|"
    r"ethnicity|ethnic(?:ally)?|racial(?:ly)?|of (?:\w+ )?(?:descent|ancestry|heritage))\b"
    rf"|\b(?:asian|african|arab|indian|european|east asian|south asian|native american|indigenous) {_PERSON}\b"
    rf"|\b(?:muslim|christian|jewish|hindu|sikh|buddhist) {_PERSON}\b"
    r"|\b(?:a |the )?(?:celebrity|famous (?:actor|actress|singer|athlete|person|player|politician)))"
    # identity: a name (two capitalised words) after "who is", "resembles", "identified as"
    r"|\b(?i:who (?:is|appears to be|looks like|resembles)|identified as|recogni[sz]able as|resembles) "
    r"(?i:the (?:actor|actress|singer|athlete|player|politician|president) )?[A-Z][a-z]+ [A-Z][a-z]+\b")


def check_excluded(record: dict, ctx: CheckContext) -> str | None:
    """Attributes the prompts exclude: race, ethnicity, skin colour, religion, identity ("who is …")."""
    m = _EXCLUDED.search(_text(record))
    return f"names an excluded attribute (race, ethnicity, religion or identity): {m.group(0)!r}" if m else None


# The marks drawn on the picture (prompts/picture.py), which the prompt says never to mention
_MARKS = re.compile(
    r"\b(?:(?:red|green|blue|orange|purple|cyan|magenta|pink|yellow|colou?red|numbered|drawn) "
    r"(?:box(?:es)?|outlines?|rectangles?|discs?|circles?|skeletons?|labels?|marks?|markers?)"
    r"|bounding box(?:es)?|(?:box|disc|marker|mark|label|tag) (?:number |no\.? ?|#)?\d{1,2}"
    r"|marked (?:with |as |by )?(?:number |#)?\d{1,2}|(?:outlined|enclosed|framed) (?:by|in|with) (?:a|the) "
    r"(?:\w+ )?(?:box|rectangle))\b", re.I)


def check_marks(record: dict, ctx: CheckContext) -> str | None:
    """The drawn marks described as if they were in the photo ("the red box", "marked 2")."""
    m = _MARKS.search(_text(record))
    return f"mentions the marks drawn on the picture: {m.group(0)!r}" if m else None


def check_unmarked(record: dict, ctx: CheckContext) -> str | None:
    """A person the annotation does not have: "the third person" or "person 3" when two are marked,
    "the fourth person from the left" of three."""
    n = len(ctx.annotation.people)
    for (kind, v), phrase in person_refs(_text(record)):
        if kind in ("index", "order") and isinstance(v, int) and v >= n:
            return f"describes {phrase!r}, but {n} {'person is' if n == 1 else 'people are'} marked"
    return None


def _norm(text: str) -> str:
    return " ".join(words(text)).lower()


def same_text_groups(records: list[dict], annotations: dict[str, Annotation]) -> dict[tuple, set[str]]:
    """For image-grounded prompts (a template with `${picture}`): (describer, prompt_id, normalised text)
    → the images given that text whose people have the same pose facts, where there are several. Such
    an answer did not depend on the photo: it is what the facts alone produce."""
    from focusclip.prompts.fill import person_line, shows_picture

    groups: dict[tuple, set[str]] = {}
    for rec in records:
        ann, text = annotations.get(rec.get("image")), rec.get("description")
        if ann is None or not isinstance(text, str) or not shows_picture(rec.get("prompt_id")):
            continue
        facts = image_facts(ann)
        pose = tuple(person_line(f, facts) for f in facts)
        groups.setdefault((rec.get("describer"), rec.get("prompt_id"), _norm(text), pose), set()).add(ann.image)
    return {k[:3]: images for k, images in groups.items() if len(images) > 1}


def check_ignores_image(record: dict, ctx: CheckContext) -> str | None:
    """The same text, word for word, for different photos of one pose (image-grounded prompts only)."""
    images = ctx.echoes.get((record.get("describer"), record.get("prompt_id"), _norm(_text(record))), set())
    others = sorted(images - {record.get("image")})
    if others:
        return (f"the same text as for {len(others)} other photo{'s' if len(others) > 1 else ''} of the same pose "
                f"({', '.join(others[:3])}{', …' if len(others) > 3 else ''}): the answer ignores the image")
    return None


def check_structured(record: dict, ctx: CheckContext) -> str | None:
    """A `--structured` answer (`structured`: per person posture and arm states, in the prompt's order)
    against the keypoints, as `posture` and `arms` judge prose; then the prose against the structure."""
    people = record.get("structured")
    if people is None:
        return None
    n = len(ctx.facts)
    if not isinstance(people, list) or len(people) != n or not all(isinstance(p, dict) for p in people):
        return f"the structured answer lists {len(people) if isinstance(people, list) else 'no'} people, " \
               f"the annotation has {n}"
    ok = {frozenset(p) for p in ctx.config.compatible_postures}
    as_facts = []
    for i, (p, f) in enumerate(zip(people, ctx.facts)):
        said = {k: p.get(k) if p.get(k) in (STATES if k == "posture" else ARM_LEVELS) else None
                for k in ("posture", "left_arm", "right_arm")}
        if said["posture"] and f.state and said["posture"] != f.state \
                and frozenset((said["posture"], f.state)) not in ok:
            return f"structured person {i + 1} is {said['posture']!r} but the keypoints say {f.state}"
        for side in ("left", "right"):
            fact, level = getattr(f, f"{side}_arm"), said[f"{side}_arm"]
            if fact and level and abs(ARM_LEVELS[fact] - ARM_LEVELS[level]) >= ctx.config.arm_level_gap:
                return f"structured person {i + 1}'s {side} arm is {level!r} but the keypoints say {fact}"
        as_facts.append(dataclasses.replace(f, state=said["posture"], left_arm=said["left_arm"],
                                            right_arm=said["right_arm"]))
    told = CheckContext(ctx.annotation, ctx.config, _facts=as_facts)
    why = check_posture(record, told) or check_arms(record, told)
    return f"the prose contradicts the structured answer: {why.replace('keypoints', 'structure')}" if why else None


def resolve_ref(ref: Ref | None, facts: list[PoseFacts]) -> PoseFacts | None:
    """The one person a reference names: ("index", i) record order, ("position", "left") the only
    person in that image third, ("order", k | "last") rank from the viewer's left. None if not unique."""
    if ref is None:
        return None
    kind, v = ref
    if kind == "index":
        return facts[v] if isinstance(v, int) and 0 <= v < len(facts) else None
    if kind == "position":
        found = [f for f in facts if f.position == v]
    else:
        orders = [f.order for f in facts if f.order is not None]
        want = max(orders, default=None) if v == "last" else v
        found = [f for f in facts if f.order is not None and f.order == want]
    return found[0] if len(found) == 1 else None


def _people_for(ref: Ref | None, ctx: CheckContext) -> list[PoseFacts]:
    """The people a claim may be about: the one its sentence names, else all (one must fit)."""
    facts = ctx.facts
    if len(facts) <= 1 or not ctx.config.scope_by_person:
        return facts
    named = resolve_ref(ref, facts)
    return [named] if named else facts


def _contradiction(claim: ArmClaim | PostureClaim, ctx: CheckContext,
                   clash: Callable[[PoseFacts], "str | None"]) -> str | None:
    """A claim contradicts the keypoints when every person it may be about has a known fact that
    clashes with it; one person that fits, or whose fact is unknown, clears it."""
    people = _people_for(claim.person, ctx)
    clashes = [clash(f) for f in people]
    if people and all(clashes):
        who = f"person {people[0].index + 1}" if len(people) == 1 else "every person"
        return f"text says {claim.phrase!r} but the keypoints of {who} say {clashes[0]}"
    return None


def check_arms(record: dict, ctx: CheckContext) -> str | None:
    """"left arm raised" where the keypoints have that arm lowered (or the reverse)."""
    gap = ctx.config.arm_level_gap
    for claim in arm_claims(_text(record)):
        def clash(f: PoseFacts, c: ArmClaim = claim) -> str | None:
            fact = getattr(f, f"{c.side}_arm")
            if fact is None or abs(ARM_LEVELS[fact] - ARM_LEVELS[c.level]) < gap:
                return None
            return f"{c.side} arm {fact}"
        why = _contradiction(claim, ctx, clash)
        if why:
            return why
    return None


def check_posture(record: dict, ctx: CheckContext) -> str | None:
    """"sitting" where the keypoints say standing, and the like (compatible pairs excepted)."""
    ok = {frozenset(p) for p in ctx.config.compatible_postures}
    for claim in posture_claims(_text(record)):
        def clash(f: PoseFacts, c: PostureClaim = claim) -> str | None:
            if f.state is None or f.state == c.state or frozenset((f.state, c.state)) in ok:
                return None
            return f.state
        why = _contradiction(claim, ctx, clash)
        if why:
            return why
    return None


# Run order: cheap text checks first; a record is rejected with the first reason found.
CHECKS: dict[str, Check] = {
    "empty": check_empty,
    "no_image": check_no_image,
    "refusal": check_refusal,
    "reasoning": check_reasoning,
    "truncated": check_truncated,
    "length": check_length,
    "leak": check_leak,
    "repetition": check_repetition,
    "excluded": check_excluded,
    "marks": check_marks,
    "ignores_image": check_ignores_image,
    "people_count": check_people_count,
    "unmarked": check_unmarked,
    "structured": check_structured,
    "posture": check_posture,
    "arms": check_arms,
}
