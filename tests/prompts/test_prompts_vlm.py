"""`pose-vlm-v1` and `--prompt-file`: the picture's place in the user turn, the marks in the people lines,
and a user's prompt file read as documented."""
from __future__ import annotations

import pytest

from focusclip.core.errors import FocusError
from focusclip.prompts.fill import PROMPT_FILE_SPLIT, TEMPLATES_DIR, build_prompt, shows_picture
from focusclip.prompts.picture import PictureSpec
from tests.pipeline.describe.test_describe import describe_flat, random_annotations


def test_the_user_turn_is_text_image_text_and_the_hash_covers_the_pictures_settings(tmp_path, monkeypatch):
    from focusclip.prompts import picture

    monkeypatch.setattr(picture.Picture, "url", lambda self: "data:image/jpeg;base64,AAAA")
    ann = next(a for a in random_annotations(10) if len(a.people) == 2)
    p = build_prompt(ann, "pose-vlm-v1", picture=PictureSpec(tmp_path, 768, "box"))
    system, user = p.messages
    assert system["content"] == p.system and "never say" in p.system and "race or ethnicity" in p.system
    kinds = [part["type"] for part in user["content"]]
    assert kinds == ["image_url", "text"]          # ${picture} opens the user template
    assert "(marked 1)" in user["content"][1]["text"] and "(marked 2)" in user["content"][1]["text"]
    shas = {build_prompt(ann, "pose-vlm-v1", picture=PictureSpec(tmp_path, side, mark)).sha
            for side in (512, 768) for mark in ("box", "none")}
    assert len(shas) == 4
    none = build_prompt(ann, "pose-vlm-v1", picture=PictureSpec(tmp_path, 768, "none"))
    assert "(marked" not in none.user
    assert shows_picture("pose-vlm-v1") and not shows_picture("pose-v1") and not shows_picture("mine")


def test_a_prompt_file_is_a_system_template_a_split_line_and_a_user_template(tmp_path):
    ann = random_annotations(3)[0]
    system = (TEMPLATES_DIR / "pose-v1.system.txt").read_text()
    user = (TEMPLATES_DIR / "pose-v1.user.txt").read_text()
    path = tmp_path / "my-pose.txt"
    path.write_text(f"{system.rstrip()}\n{PROMPT_FILE_SPLIT}\n{user}")
    own = build_prompt(ann, prompt_file=path)
    assert (own.system, own.user, own.sha) == (lambda b: (b.system, b.user, b.sha))(build_prompt(ann))
    rec = describe_flat([ann], tmp_path / "d.jsonl", prompt_file=path)
    assert rec.counts["described"] == 1
    from focusclip.core.io import read_jsonl

    row, = read_jsonl(tmp_path / "d.jsonl")
    assert (row["prompt_id"], row["prompt_sha"]) == ("my-pose", own.sha)


@pytest.mark.parametrize("text,part", [("only a system prompt\n", "----- user -----"),
                                       (f"\n{PROMPT_FILE_SPLIT}\nuser\n", "----- user -----"),
                                       (f"sys\n{PROMPT_FILE_SPLIT}\n${{nope}}\n", "placeholder")])
def test_a_malformed_prompt_file_is_one_line(tmp_path, text, part):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(FocusError, match=part.replace("$", r"\$")):
        build_prompt(random_annotations(1)[0], prompt_file=path)
