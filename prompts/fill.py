"""Fill the versioned prompt templates in `prompts/templates/<id>.{system,user}.txt` (or a user's
`--prompt-file`) for one image. A user template holding `${picture}` carries the image there
(`picture.py`): the request's user turn becomes text and image parts, and the hashed text holds the
picture's settings in its place."""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from string import Template

from focusclip.core.errors import fail
from focusclip.data.geometry import PoseFacts, image_facts
from focusclip.data.records import Annotation
from focusclip.data.skeleton import JOINTS
from focusclip.prompts.picture import Picture, PictureSpec
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
    picture: Picture | None = None   # the image the user turn carries, at `picture.spec.describe()` in `user`

    @property
    def messages(self) -> list[dict]:
        """OpenAI-style chat messages; with a picture the user turn is [text, image_url, text] parts (the
        image made now: a JPEG data URL, or a file:// URL of the marked copy)."""
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user_content()}]

    def user_content(self, image_part: dict | None = None) -> str | list[dict]:
        """The user turn: text alone, or its parts around the picture (`image_part` replaces the
        image_url part: the transformers backend passes {"type": "image", "image": PIL image})."""
        if self.picture is None:
            return self.user
        before, _, after = self.user.partition(self.picture.spec.describe())
        image = image_part or {"type": "image_url", "image_url": {"url": self.picture.url()}}
        parts = [{"type": "text", "text": before.strip()}, image, {"type": "text", "text": after.strip()}]
        return [p for p in parts if p.get("type") != "text" or p["text"]]


def available_prompts() -> list[str]:
    return sorted(p.name[: -len(".system.txt")] for p in TEMPLATES_DIR.glob("*.system.txt"))


PROMPT_FILE_SPLIT = "----- user -----"   # in a --prompt-file: the system template above, the user one below


def load_prompt_file(path: str | Path) -> tuple[str, str]:
    """A user's own prompt (docs/describe.md, "Your own prompt"): the system template, a line
    `----- user -----`, the user template; the same placeholders as the bundled ones."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise fail(f"cannot read the prompt file ({e})", str(path), "pass a UTF-8 text file") from None
    system, sep, user = text.partition(f"\n{PROMPT_FILE_SPLIT}\n")
    if not sep or not system.strip() or not user.strip():
        raise fail(f"has no line '{PROMPT_FILE_SPLIT}' between a system and a user template", str(path),
                   "write the system template, that line, then the user template")
    return system.rstrip("\n") + "\n", user


def load_templates(prompt_id: str, prompt_file: str | Path | None = None) -> tuple[str, str]:
    """The (system, user) template texts of `prompt_id`, or of `prompt_file` when given; a user error
    naming the ids that exist."""
    if prompt_file is not None:
        return load_prompt_file(prompt_file)
    system, user = TEMPLATES_DIR / f"{prompt_id}.system.txt", TEMPLATES_DIR / f"{prompt_id}.user.txt"
    if not (system.is_file() and user.is_file()):
        raise fail(f"prompt '{prompt_id}' not found", str(TEMPLATES_DIR),
                   f"use one of: {', '.join(available_prompts()) or 'none'}")
    return system.read_text(encoding="utf-8"), user.read_text(encoding="utf-8")


@functools.lru_cache(maxsize=64)
def shows_picture(prompt_id: str | None) -> bool:
    """Whether a bundled prompt shows the model the photo (its user template holds `${picture}`);
    False for an id that is not bundled (a --prompt-file's)."""
    path = TEMPLATES_DIR / f"{prompt_id}.user.txt"
    return bool(prompt_id) and "/" not in prompt_id and path.is_file() and \
        "${picture}" in path.read_text(encoding="utf-8")


def person_line(facts: PoseFacts, everyone: list[PoseFacts], mark: str | None = None) -> str:
    """'- the person on the left (in the front): is sitting; their left arm is raised; …'; with a
    picture whose people are marked, '- the person on the left (marked 1, in the front): …'."""
    label = person_label(facts, everyone)
    if mark:
        label += f" (marked {facts.index + 1})"
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


MARK_WORDS = {
    "none": "The people are not marked on the photo; describe only the people listed below.",
    "box": "Each listed person is outlined on the photo by a coloured box with their number at its top left.",
    "number": "Each listed person has their number in a coloured disc drawn at their head.",
    "skeleton": "Each listed person has their annotated skeleton drawn on the photo in one colour, with "
                "their number at their head.",
}


def build_prompt(annotation: Annotation, prompt_id: str = DEFAULT_PROMPT, with_coords: bool = False,
                 picture: PictureSpec | None = None, prompt_file: str | Path | None = None) -> Prompt:
    """Fill `prompt_id`'s templates (or `prompt_file`'s) with the activity, the people count and each
    person's facts (one line per person, in record order; raw keypoint coordinates only with
    `with_coords`). A template with `${picture}` needs `picture` (`--images`): the prompt carries it."""
    system_t, user_t = load_templates(prompt_id, prompt_file)
    wants_picture = "${picture}" in user_t
    if wants_picture and picture is None:
        raise fail(f"prompt '{prompt_id}' shows the model the photo, and no image folder was given", "--images",
                   "pass --images DIR holding the annotated images")
    mark = picture.mark if wants_picture and picture.mark != "none" else None
    facts = image_facts(annotation)
    lines = []
    for f, person in zip(facts, annotation.people):
        lines.append(person_line(f, facts, mark))
        if with_coords:
            lines.append(coords_line(person, annotation.width, annotation.height))
    values = {"activity": activity_text(annotation), "count": str(len(facts)),
              "people": "\n".join(lines), "image": annotation.image,
              "picture": picture.describe() if wants_picture else "",
              "marks": MARK_WORDS[picture.mark] if wants_picture else ""}
    try:
        system = Template(system_t).substitute(values)
        user = Template(user_t).substitute(values)
    except (KeyError, ValueError) as e:
        raise fail(f"prompt '{prompt_id}' has an unknown or malformed placeholder ({e})",
                   str(prompt_file or TEMPLATES_DIR),
                   "use ${activity}, ${count}, ${people}, ${image}, ${picture}, ${marks}") from None
    sha = hashlib.sha256(f"{system}\n\n{user}".encode("utf-8")).hexdigest()
    return Prompt(prompt_id, system, user, sha, Picture(annotation, picture) if wants_picture else None)
