"""`--structured`: the answer is a JSON object, per described person their posture and each arm's state
as enums (the words of data/geometry.py) plus the prose, so the filter checks the claims against the
geometry directly instead of reading them from prose.

The schema goes to OpenAI-compatible servers as `response_format` (json_schema, strict) and to offline
vLLM as `SamplingParams(structured_outputs=StructuredOutputsParams(json=…))`; transformers has no
constrained decoding, so there only the prompt asks for it. The record keeps the prose in `description`
and the people in `structured`; an answer that is not such an object fails (a rerun asks again).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json

from focusclip.data.geometry import ARMS, STATES
from focusclip.prompts import Prompt

UNCLEAR = "unclear"
SCHEMA = {
    "type": "object",
    "properties": {
        "people": {"type": "array", "items": {
            "type": "object",
            "properties": {
                "label": {"type": "string"},
                "posture": {"enum": [*STATES, UNCLEAR]},
                "left_arm": {"enum": [*ARMS, UNCLEAR]},
                "right_arm": {"enum": [*ARMS, UNCLEAR]},
            },
            "required": ["label", "posture", "left_arm", "right_arm"],
            "additionalProperties": False,
        }},
        "description": {"type": "string"},
    },
    "required": ["people", "description"],
    "additionalProperties": False,
}
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "pose_description", "strict": True,
                                                          "schema": SCHEMA}}
INSTRUCTION = ("Answer with one JSON object only: \"people\", one entry per listed person in the order listed, "
               "each with their \"label\" as given, their \"posture\" (" + ", ".join(STATES) + ") and "
               "\"left_arm\" and \"right_arm\" (" + "; ".join(ARMS) + "), \"unclear\" where neither the facts "
               "nor the photo say; then \"description\", the paragraph.")


def structured_prompt(prompt: Prompt) -> Prompt:
    """`prompt` asking for the JSON answer: the instruction ends its user text, and the hash covers it."""
    user = f"{prompt.user.rstrip()}\n\n{INSTRUCTION}\n"
    sha = hashlib.sha256(f"{prompt.system}\n\n{user}".encode("utf-8")).hexdigest()
    return dataclasses.replace(prompt, user=user, sha=sha)


def parse_answer(text: str) -> tuple[str, list[dict]] | str:
    """(the prose, the people) of a JSON answer, or why it is not one the schema allows."""
    body = text.strip()
    if body.startswith("```"):   # a fenced answer from a model the schema did not constrain
        body = body.strip("`").removeprefix("json").strip()
    try:
        data = json.loads(body)
    except json.JSONDecodeError as e:
        return f"the answer is not JSON ({e.msg} at character {e.pos})"
    if not isinstance(data, dict) or not isinstance(data.get("description"), str) \
            or not isinstance(data.get("people"), list):
        return "the answer lacks the schema's \"description\" text or \"people\" list"
    enums = SCHEMA["properties"]["people"]["items"]["properties"]
    for i, p in enumerate(data["people"]):
        if not isinstance(p, dict) or not isinstance(p.get("label"), str):
            return f"people[{i}] is not an object with a label"
        for key in ("posture", "left_arm", "right_arm"):
            if p.get(key) not in enums[key]["enum"]:
                return f"people[{i}].{key} is {p.get(key)!r}, not one of the schema's words"
    people = [{k: p[k] for k in ("label", "posture", "left_arm", "right_arm")} for p in data["people"]]
    return data["description"].strip(), people
