"""What a description claims about the people, read from its text with patterns (no parser model).

Reading favours precision: a phrase is a claim only in a clear form ("the left arm is raised",
"raising her right hand", "is sitting", "There are two people"), and a negated phrase ("is not
raised", "rather than sitting") is no claim at all. Whatever is missed is simply not checked.

Sentences are attributed to a person by how they name them ("The first person", "person 2", "the
person on the left", "the leftmost person"): a sentence that names exactly one person starts that
person's scope, which lasts until another person or a plural is named. Claims outside any scope
have `person = None`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from focusclip.pipeline.filter.text_metrics import sentences

# Who a claim is about: ("index", 0) | ("position", "left") | ("order", 0) | ("order", "last"); see
# person_scopes.
Ref = tuple[str, object]

# The arm words of data/geometry.py ARMS, ranked from low to high.
ARM_LEVELS = {"lowered": 0, "horizontal": 1, "raised": 2, "raised above the head": 3}

NUMBER_WORDS = {
    "no": 0, "zero": 0, "a": 1, "an": 1, "one": 1, "single": 1, "lone": 1, "two": 2, "three": 3,
    "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11,
    "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19, "twenty": 20,
}
ORDINALS = {"first": 0, "second": 1, "third": 2, "fourth": 3, "fifth": 4, "sixth": 5, "seventh": 6,
            "eighth": 7, "ninth": 8, "tenth": 9, "1st": 0, "2nd": 1, "3rd": 2, "4th": 3, "5th": 4}

_NUM = r"(?P<n>\d{1,3}|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + r")"
# Only nouns that mean "a human" without a role: "There are two players" may leave out a referee.
_PEOPLE_NOUN = r"(?:people|persons?|individuals?|humans?|human beings?|figures?)"
# Up to two adjectives ("two young people"), but not "one other person": that counts someone else.
_ADJ = r"(?:(?!(?:other|more|additional|further|else)\b)[a-z-]+ ){0,2}?"
_COUNT_PATTERNS = tuple(re.compile(p, re.I) for p in (
    rf"\bthere (?:is|are|'s|appears? to be|seems? to be) (?:only |exactly |just |a total of )?{_NUM} {_ADJ}{_PEOPLE_NOUN}\b",
    rf"\b(?:image|picture|photo(?:graph)?|scene|frame|shot|snapshot) (?:shows|depicts|features|contains|captures|includes|has|portrays) (?:only |exactly |just |a total of )?{_NUM} {_ADJ}{_PEOPLE_NOUN}\b",
    rf"\b(?:a group of|a total of|in total,?) {_NUM} {_ADJ}{_PEOPLE_NOUN}\b",
    rf"(?:^|[.!?]\s+){_NUM} {_ADJ}{_PEOPLE_NOUN} (?:is|are) (?:visible|present|shown|depicted|pictured|in (?:the|this) (?:image|picture|photo|scene))\b",
))
_ZERO_PATTERNS = tuple(re.compile(p, re.I) for p in (
    r"\bthere (?:is|are) (?:nobody|no one|no-one|no people|no persons?|no humans?)\b(?! else)",
    r"\b(?:nobody|no one|no-one) (?:is|appears) (?:visible|present|shown|in (?:the|this) (?:image|picture|photo))",
    r"\b(?:shows|contains|depicts|features) (?:nobody|no one|no people|no persons?|no humans?)\b",
    r"\b(?:image|picture|photo|scene) is empty\b",
))

_NEGATION = re.compile(r"\b(?:not|never|no|nobody|none|no longer|neither|nor|without|instead of|rather than)\b"
                       r"|n't\b",
                       re.I)


def people_count_claim(text: str) -> tuple[int, str] | None:
    """The number of people the text declares first ("There are two people", "3 persons are
    visible", "nobody is in the image"), with the phrase; None when it declares none."""
    found = []
    for pat in _COUNT_PATTERNS + _ZERO_PATTERNS:
        for m in pat.finditer(text):
            raw = (m.groupdict().get("n") or "no").lower()
            n = int(raw) if raw.isdigit() else NUMBER_WORDS[raw]
            plural = re.search(r"\b(?:people|persons|individuals|humans|beings|figures)\b", m.group(0), re.I)
            if n == 1 and plural and raw in ("a", "an"):
                continue  # "a group of people", "a couple of people": no number
            found.append((m.start(), n, m.group(0).strip()))
    if not found:
        return None
    _, n, phrase = min(found)
    return n, phrase


@dataclass(frozen=True)
class ArmClaim:
    side: str            # "left" / "right": the person's own side, like the MPII joint names
    level: str           # a key of ARM_LEVELS
    person: Ref | None   # the person the sentence names (see person_scopes), None when not attributed
    phrase: str


@dataclass(frozen=True)
class PostureClaim:
    state: str           # one of data/geometry.py STATES
    person: Ref | None
    phrase: str


_POSS = r"(?:(?:his|her|their|its|the|one|the person's|the man's|the woman's|[a-z]+'s) )?"
_LIMB = r"(?P<limb>arms?|hands?|wrists?|forearms?)"
_SIDE = r"(?P<side>left|right|both)"
# Words allowed between "left arm" and its level word: "is", "are held", "is also slightly".
_FILLER = r"(?:(?:is|are|was|were|being|been|held|kept|also|both|slightly|partially|somewhat|fully|high|" \
          r"straight|extended|stretched|appears|appear|seems|seem|to|be|and|clearly) ){0,4}"
_LEVEL_WORDS = (
    ("raised above the head", r"(?:raised |lifted |held |stretched |extended |reaching )?"
                              r"(?:above|over) (?:his|her|their|its|the) heads?|overhead"),
    ("raised", r"raised|lifted|up(?! against)|upwards?|uplifted|elevated|in the air|aloft|held high"),
    ("horizontal", r"horizontal(?:ly)?|at shoulder (?:height|level)|straight out to the side"),
    ("lowered", r"lowered|down|downwards?|hanging(?: down)?|hangs(?: down)?|dangling|"
                r"(?:at|by) (?:his|her|their|its|the) sides?|resting at (?:his|her|their|its|the) sides?"),
)
_LEVEL = "|".join(f"(?P<L{i}>{p})" for i, (_, p) in enumerate(_LEVEL_WORDS))
_ARM_AFTER = re.compile(rf"\b{_SIDE} {_LIMB},? {_FILLER}(?:{_LEVEL})\b", re.I)
_ARM_VERB = re.compile(rf"\b(?P<verb>rais(?:es|ing|ed)|lift(?:s|ing|ed)|lower(?:s|ing|ed))"
                       rf" {_POSS}{_SIDE} {_LIMB}\b", re.I)
_ARM_WITH = re.compile(rf"\bwith {_POSS}{_SIDE} {_LIMB} (?:{_LEVEL})\b", re.I)

_POSTURES = (
    ("standing", r"standing(?! (?:ovation|room|desk|lamp|order|water|wave|start|position of))|stood|"
                 r"stands (?:up|still|upright|tall|straight|on)|on (?:his|her|their) feet"),
    ("sitting", r"sitting(?! room)|sits|sat|seated|sitting down"),
    # "on his knees" only after a verb: "hands on his knees" is no kneeling
    ("kneeling", r"kneeling|kneels|knelt|(?:is|are|was|were|down|gets?|getting) on (?:one|both|his|her|their) "
                 r"knees?"),
    ("lying", r"lying(?: down)?|lies? (?:down|flat|face|on (?:his|her|their) (?:back|side|stomach|front))|"
              r"laying (?:down|on)|reclining"),
)
_POSTURE = re.compile(r"(?<![-\w])(?:" + "|".join(f"(?P<P{i}>{p})" for i, (_, p) in enumerate(_POSTURES))
                      + r")\b", re.I)

_NOUN = r"(?:person|man|woman|individual|figure|boy|girl|child|player|one)"
_POSITION_WORD = {"left": "left", "right": "right", "centre": "centre", "center": "centre", "middle": "centre"}
# The ways a sentence names one person (prompts/words.py person_label, and common LLM phrasings):
# record order ("the first person", "person 2"), the image third ("the person on the left"), the
# rank from the viewer's left ("the leftmost person", "the person second from the left").
_REFS = (
    ("index", re.compile(rf"\bthe (?P<v>{'|'.join(ORDINALS)}) {_NOUN}\b(?! from)", re.I)),
    ("index", re.compile(r"\bperson (?P<v>\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten)\b", re.I)),
    ("position", re.compile(rf"\bthe {_NOUN} (?:on|at|in) the (?:far )?(?P<v>left|right|centre|center|middle)\b"
                            rf"(?! of (?:the|a|an|his|her|their) {_NOUN})", re.I)),
    ("order", re.compile(rf"\bthe (?P<v>leftmost|rightmost) {_NOUN}\b", re.I)),
    ("order", re.compile(rf"\bthe {_NOUN} (?P<v>{'|'.join(ORDINALS)}) from the left\b", re.I)),
)
_PLURAL = re.compile(r"\b(?:both (?:people|persons|of them|men|women)|all (?:of them|the people|three|four|five)|"
                     r"the (?:people|others|other person|other people|two|three)|they (?:both|all)|"
                     r"each (?:person|of them))\b", re.I)

def _ref(kind: str, raw: str) -> Ref:
    raw = raw.lower()
    if kind == "position":
        return ("position", _POSITION_WORD[raw])
    if kind == "order":
        return ("order", 0 if raw == "leftmost" else "last" if raw == "rightmost" else ORDINALS[raw])
    if raw in ORDINALS:
        return ("index", ORDINALS[raw])
    return ("index", int(raw) - 1 if raw.isdigit() else NUMBER_WORDS[raw] - 1)


def _negated(text: str, start: int, end: int) -> bool:
    """A negation inside the phrase or in the four words before it."""
    before = " ".join(text[:start].split()[-4:])
    return bool(_NEGATION.search(before) or _NEGATION.search(text[start:end]))


def _sides(side: str) -> tuple[str, ...]:
    return ("left", "right") if side.lower() == "both" else (side.lower(),)


_HEDGE = re.compile(r"\b(?:slightly|partially|somewhat)\b", re.I)


def _level_of(m: re.Match) -> str:
    """The level a match claims; a hedged "slightly raised/lowered" claims only "horizontal"-ish."""
    level = next(_LEVEL_WORDS[i][0] for i in range(len(_LEVEL_WORDS)) if m.group(f"L{i}"))
    if level in ("raised", "lowered") and _HEDGE.search(m.group(0)):
        return "horizontal"
    return level


def person_refs(text: str) -> list[tuple[Ref, str]]:
    """Every way the text names one person, with the phrase, in text order."""
    found = [(m.start(), _ref(kind, m.group("v")), m.group(0)) for kind, pat in _REFS for m in pat.finditer(text)]
    return [(ref, phrase) for _, ref, phrase in sorted(found, key=lambda f: f[0])]


def person_scopes(text: str) -> list[tuple[str, Ref | None]]:
    """Each sentence with the one person it is about, or None. A sentence naming exactly one person
    opens that person's scope, which lasts until a sentence names another, several or a plural."""
    out, current = [], None
    for s in sentences(text):
        refs = {_ref(kind, m.group("v")) for kind, pat in _REFS for m in pat.finditer(s)}
        if len(refs) == 1:
            current = refs.pop()
        elif refs or _PLURAL.search(s):
            current = None
        out.append((s, current))
    return out


def arm_claims(text: str) -> list[ArmClaim]:
    """Claims of the form "left arm (is) raised", "raising his right hand", "with her left arm down"."""
    claims = []
    for s, person in person_scopes(text):
        for pat in (_ARM_AFTER, _ARM_WITH):
            for m in pat.finditer(s):
                if not _negated(s, m.start(), m.end()):
                    claims += [ArmClaim(side, _level_of(m), person, m.group(0)) for side in _sides(m["side"])]
        for m in _ARM_VERB.finditer(s):
            if _negated(s, m.start(), m.end()):
                continue
            level = "lowered" if m["verb"].lower().startswith("lower") else "raised"
            claims += [ArmClaim(side, level, person, m.group(0)) for side in _sides(m["side"])]
    return list({(c.side, c.level, c.person): c for c in claims}.values())


def posture_claims(text: str) -> list[PostureClaim]:
    """Claims "is standing", "sits", "seated", "on his knees", "lying down" (not "standing ovation")."""
    claims = []
    for s, person in person_scopes(text):
        for m in _POSTURE.finditer(s):
            if _negated(s, m.start(), m.end()):
                continue
            state = next(_POSTURES[i][0] for i in range(len(_POSTURES)) if m.group(f"P{i}"))
            claims.append(PostureClaim(state, person, m.group(0)))
    return claims
