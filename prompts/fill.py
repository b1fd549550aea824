"""Fill the versioned prompt templates in `prompts/templates/<id>.{system,user}.txt` for one image."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from string import Template

from focusclip.core.errors import fail
from focusclip.data.geometry import PoseFacts, image_facts
from focusclip.data.records import Annotation
from focusclip.data.skeleton import JOINTS
from focusclip.prompts.words import (DEPTH_PHRASES, activity_text, clause_text, fact_clauses, person_label,
                           state_predicate)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
DEFAULT_PROMPT = "pose-v1"


@dataclass(frozen=True)
class Prompt:
    """A filled prompt. `sha` (sha256 of system + user) is the `prompt_sha` of the description key."""
    prompt_id: str
    system: str
    user: str
    sha: str

    @property
    def messages(self) -> list[dict]:
        """OpenAI-style chat messages."""
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


def available_prompts() -> list[str]:
    return sorted(p.name[: -len(".system.txt")] for p in TEMPLATES_DIR.glob("*.system.txt"))


def load_templates(prompt_id: str) -> tuple[str, str]:
    """The (system, user) template texts of `prompt_id`; a user error naming the ids that exist."""
    system, user = TEMPLATES_DIR / f"{prompt_id}.system.txt", TEMPLATES_DIR / f"{prompt_id}.user.txt"
    if not (system.is_file() and user.is_file()):
        raise fail(f"prompt '{prompt_id}' not found", str(TEMPLATES_DIR),
                   f"use one of: {', '.join(available_prompts()) or 'none'}")
    return system.read_text(encoding="utf-8"), user.read_text(encoding="utf-8")


def person_line(facts: PoseFacts, everyone: list[PoseFacts]) -> str:
    """'- the person on the left (in the front): is sitting; their left arm is raised; …'."""
    label = person_label(facts, everyone)
    if facts.depth:
        label += f" ({DEPTH_PHRASES[facts.depth]})"
    parts = [p for p in [state_predicate(facts)] if p] + [clause_text(c) for c in fact_clauses(facts)]
    return f"- {label}: " + ("; ".join(parts) if parts else "no pose annotated") + "."


def joint_words(name: str) -> str:
    """'r_ankle' → 'right ankle', 'upper_neck' → 'upper neck'."""
    side, _, rest = name.partition("_")
    return {"r": f"right {rest}", "l": f"left {rest}"}.get(side, name.replace("_", " "))


def coords_line(person, width, height) -> str:
    """Labelled keypoints as '(x, y)' pixels, 0-based, person's own left/right."""
    pts = [f"{joint_words(name)} ({x:.0f}, {y:.0f})"
           for name, (x, y), v in zip(JOINTS, person.kpts, person.kpts_vis) if v > 0]
    size = f" in a {width}x{height} image" if width and height else ""
    return f"  keypoints{size} (x, y pixels from the top left): " + (", ".join(pts) or "none")


def build_prompt(annotation: Annotation, prompt_id: str = DEFAULT_PROMPT,
                 with_coords: bool = False) -> Prompt:
    """Fill `prompt_id`'s templates with the activity, the people count and each person's facts
    (one line per person, in record order; raw keypoint coordinates only with `with_coords`)."""
    system_t, user_t = load_templates(prompt_id)
    facts = image_facts(annotation)
    lines = []
    for f, person in zip(facts, annotation.people):
        lines.append(person_line(f, facts))
        if with_coords:
            lines.append(coords_line(person, annotation.width, annotation.height))
    values = {"activity": activity_text(annotation), "count": str(len(facts)),
              "people": "\n".join(lines), "image": annotation.image}
    try:
        system = Template(system_t).substitute(values)
        user = Template(user_t).substitute(values)
    except (KeyError, ValueError) as e:
        raise fail(f"prompt '{prompt_id}' has an unknown or malformed placeholder ({e})",
                   str(TEMPLATES_DIR), "use ${activity}, ${count}, ${people}, ${image}") from None
    sha = hashlib.sha256(f"{system}\n\n{user}".encode("utf-8")).hexdigest()
    return Prompt(prompt_id, system, user, sha)
