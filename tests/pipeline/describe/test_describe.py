"""`describe` with the offline template backend: records, resume, rounds, shards, soundness, CLI."""
from __future__ import annotations

import hashlib
import json
import math
import random
import re
import subprocess

import pytest

from focusclip.core.errors import FocusError
from focusclip.data.geometry import ARMS, BENDS, HANDS, LEG_ORIENTATIONS, STATES, image_facts
from focusclip.core.io import read_jsonl
from focusclip.data.records import Annotation, Description, write_annotations
from focusclip.pipeline.describe.stage import DescribeOptions, latest_descriptions, run_describe
from focusclip.pipeline.describe.template import template_description
from focusclip.prompts import build_prompt
from focusclip.prompts.words import person_label
from tests.conftest import console_script
from tests.data.test_geometry import STANDING, make_person


def random_person(rng: random.Random, pid: int, x0: float, k: float, drop: float = 0.1):
    """STANDING with random arm and leg angles, moved to x0 and scaled by k; some joints unlabelled."""
    j = dict(STANDING)
    for side, sx in (("l", 1), ("r", -1)):
        sh = j[f"{side}_shoulder"]
        a1, a2 = rng.uniform(-30, 200), rng.uniform(-30, 200)  # 0 = down, 90 = out to the side, 180 = up
        el = (sh[0] + sx * 70 * math.sin(math.radians(a1)), sh[1] + 70 * math.cos(math.radians(a1)))
        j[f"{side}_elbow"] = el
        j[f"{side}_wrist"] = (el[0] + sx * 65 * math.sin(math.radians(a2)), el[1] + 65 * math.cos(math.radians(a2)))
        hip = j[f"{side}_hip"]
        t = rng.uniform(-20, 100)
        kn = (hip[0] + sx * 100 * math.sin(math.radians(t)), hip[1] + 100 * math.cos(math.radians(t)))
        j[f"{side}_knee"] = kn
        s = rng.uniform(-10, 30)
        j[f"{side}_ankle"] = (kn[0] + sx * 100 * math.sin(math.radians(s)), kn[1] + 100 * math.cos(math.radians(s)))
    j = {n: (x0 + k * (x - 500), 60 + k * y) for n, (x, y) in j.items() if rng.random() > drop}
    return make_person(j, scale=2.0 * k, pid=pid)


def random_annotations(n: int, seed: int = 0, max_people: int = 4) -> list[Annotation]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        people = [random_person(rng, p, rng.uniform(80, 1200), rng.uniform(0.4, 1.6))
                  for p in range(rng.choice([1, 1, 2, max_people]))]
        out.append(Annotation(image=f"{i:09d}.jpg", split=rng.choice(["train", "train", "val"]), width=1280,
                              height=720, activity_id=i, category="sports",
                              activity=rng.choice(["curling", "bicycling, mountain", "yoga, Power", ""]),
                              people=people))
    return out


def image_seed(seed: int, image: str, round_: int = 0) -> int:
    """The per-image seed as docs/describe.md defines it: sha256 of "seed:image:round", first 8 bytes, 63 bits."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{image}:{round_}".encode()).digest()[:8], "big") & (2 ** 63 - 1)


def describe_flat(annotations, output, **options):
    """`run_describe` on an annotations file or an in-memory list, with the options named as on the
    command line (`DescribeOptions.from_flat`) and no progress bar."""
    on_disk = not isinstance(annotations, list)
    opts = DescribeOptions.from_flat(annotations=annotations if on_disk else None, output=output, **options)
    return run_describe(opts, records=None if on_disk else annotations, progress=False)


@pytest.fixture
def ann_file(tmp_path):
    path = tmp_path / "annotations.jsonl"
    write_annotations(path, random_annotations(12))
    return path


def test_one_record_per_image_with_the_design_fields(ann_file, tmp_path):
    out = tmp_path / "descriptions" / "template.jsonl"
    report = run_describe(DescribeOptions(ann_file, out), progress=False)
    rows = read_jsonl(out)
    assert len(rows) == 12 and len({r["image"] for r in rows}) == 12
    r = rows[0]
    assert set(r) == {"image", "describer", "backend", "description", "prompt_id", "prompt_sha", "params",
                      "finish_reason", "usage", "created"}
    assert (r["describer"], r["backend"], r["prompt_id"], r["finish_reason"]) == \
           ("template", "template", "pose-v1", "stop")
    assert r["params"] == {"max_tokens": 512, "seed": image_seed(0, r["image"]), "run_seed": 0}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", r["created"])
    ann = {a.image: a for a in random_annotations(12)}[r["image"]]
    assert r["prompt_sha"] == build_prompt(ann).sha
    assert r["description"] == template_description(ann, image_seed(0, r["image"]))
    assert len({row["params"]["seed"] for row in rows}) == 12       # every image its own seed
    assert report.counts["described"] == 12
    saved = json.loads((tmp_path / "descriptions" / "template.report.json").read_text())
    assert saved["counts"]["asked"] == 12 and saved["usage"] == {"prompt_tokens": 0, "completion_tokens": 0}


def test_rerun_asks_nothing_and_a_torn_tail_is_repaired(ann_file, tmp_path):
    out = tmp_path / "t.jsonl"
    run_describe(DescribeOptions(ann_file, out, limit=5), progress=False)
    with open(out, "a") as f:
        f.write('{"image": "000000009.jpg", "descr')  # a crash mid-line
    report = run_describe(DescribeOptions(ann_file, out), progress=False)
    assert report.counts["torn_lines_repaired"] == 1
    assert report.counts["already_described"] == 5 and report.counts["asked"] == 7
    rows = read_jsonl(out, allow_torn_tail=False)
    assert sorted(r["image"] for r in rows) == sorted(a.image for a in random_annotations(12))
    assert run_describe(DescribeOptions(ann_file, out), progress=False).counts["asked"] == 0


def test_redo_rounds_append_and_latest_wins(ann_file, tmp_path):
    out = tmp_path / "t.jsonl"
    run_describe(DescribeOptions(ann_file, out), progress=False)
    redo = {"000000001.jpg", "000000004.jpg"}
    report = run_describe(DescribeOptions(ann_file, out, redo_images=frozenset(redo), round=1), progress=False)
    assert report.counts["asked"] == 2
    assert json.loads((tmp_path / "t.round-1.report.json").read_text())["counts"]["asked"] == 2
    assert json.loads((tmp_path / "t.report.json").read_text())["counts"]["asked"] == 12  # kept
    rows = read_jsonl(out)
    assert len(rows) == 14
    latest = latest_descriptions(out)
    assert len(latest) == 12
    for (image, describer, sha), d in latest.items():
        assert isinstance(d, Description) and d.key == (image, describer, sha)
        assert (d.params.get("round"), d.params["seed"]) == \
               ((1, image_seed(0, image, 1)) if image in redo else (None, image_seed(0, image, 0)))
    forced = run_describe(DescribeOptions(ann_file, out, force=True, limit=3), progress=False)
    assert forced.counts["asked"] == 3 and len(read_jsonl(out)) == 17


def test_shards_split_and_limit(ann_file, tmp_path):
    images = []
    for i in range(3):
        out = tmp_path / f"s{i}.jsonl"
        run_describe(DescribeOptions(ann_file, out, shard=f"{i}/3"), progress=False)
        images.append({r["image"] for r in read_jsonl(out)})
        assert (tmp_path / f"s{i}.shard-{i}-of-3.report.json").is_file()
    assert sum(map(len, images)) == 12 and set.union(*images) == {a.image for a in random_annotations(12)}
    val = {a.image for a in random_annotations(12) if a.split == "val"}
    run_describe(DescribeOptions(ann_file, tmp_path / "val.jsonl", split="val"), progress=False)
    assert {r["image"] for r in read_jsonl(tmp_path / "val.jsonl")} == val
    with pytest.raises(FocusError, match="--split"):
        run_describe(DescribeOptions(ann_file, tmp_path / "x.jsonl", split="dev"), progress=False)


def test_images_without_labelled_joints_are_skipped(tmp_path):
    anns = [Annotation(image="a.jpg", split="test", people=[make_person({}, center=[5.0, 5.0])]),
            Annotation(image="b.jpg", split="test", people=[]),
            Annotation(image="c.jpg", split="test", people=[make_person(STANDING)])]
    report = run_describe(DescribeOptions(None, tmp_path / "o.jsonl"), records=anns, progress=False)
    assert report.skipped == {"no labelled joints": 1, "no people": 1}
    assert [r["image"] for r in read_jsonl(tmp_path / "o.jsonl")] == ["c.jpg"]
    # Nothing describable at all is no input: an error that says why, and no file.
    with pytest.raises(FocusError, match=r"none of the 2 selected images can be described "
                                         r"\(1 no labelled joints, 1 no people\)"):
        run_describe(DescribeOptions(None, tmp_path / "none.jsonl"), records=anns[:2], progress=False)
    assert not (tmp_path / "none.jsonl").exists() and not (tmp_path / "none.report.json").exists()


_VALUE = "|".join(sorted({*ARMS, *BENDS, *HANDS, *LEG_ORIENTATIONS}, key=len, reverse=True))
_CLAIM = re.compile(rf"\b(their left|their right|both) (arm|elbow|hand|leg|knee)s? (?:is |are )?({_VALUE})\b")


def _segments(text: str, ann: Annotation) -> list[tuple[object, str]]:
    """Each person's part of the text, cut at the person labels (followed by a space or a comma)."""
    facts = image_facts(ann)
    found = [(re.search(rf"\b{re.escape(person_label(f, facts))}[ ,]", text, re.I), f) for f in facts]
    starts = sorted((m.start(), f) for m, f in found if m)
    return [(f, text[s:(starts[i + 1][0] if i + 1 < len(starts) else len(text))])
            for i, (s, f) in enumerate(starts)]


def test_template_output_is_sound_on_random_people():
    anns = random_annotations(150, seed=7, max_people=5)
    checked = 0
    for ann in anns:
        text = template_description(ann, seed=3)
        n = len(ann.people)
        assert text.startswith("There is one person in the image" if n == 1 else "There are ")
        assert not re.search(r"\d", text.split(" people in the image")[-1])  # no numbers, no coordinates
        assert "  " not in text and text.endswith(".")
        for f, seg in _segments(text, ann):
            for side, part, value in _CLAIM.findall(seg):
                for s in (("left", "right") if side == "both" else (side.split()[1],)):
                    assert getattr(f, f"{s}_{part}") == value, (seg, s, part, value)
                    checked += 1
            for state in STATES:
                if re.search(rf"\bis {state}\b", seg):
                    assert f.state == state
    assert checked > 500
    assert template_description(anns[0], seed=3) == template_description(anns[0], seed=3)
    assert len({template_description(anns[0], seed=s) for s in range(8)}) > 1  # varied phrasing


def test_activity_that_contradicts_the_pose_is_not_claimed():
    sitting = {"head_top": (500, 100), "upper_neck": (500, 167), "thorax": (500, 180), "r_shoulder": (498, 185),
               "l_shoulder": (502, 185), "pelvis": (500, 300), "r_hip": (498, 300), "l_hip": (502, 300),
               "r_knee": (600, 305), "l_knee": (604, 305), "r_ankle": (600, 405), "l_ankle": (604, 405)}
    ann = Annotation(image="s.jpg", split="train", width=1280, height=720, activity="standing, talking in person",
                     people=[make_person(sitting)])
    text = template_description(ann)
    assert "standing" not in text and "is sitting" in text and "talking in person" in text


def test_cli_describe_template_and_user_errors(ann_file, tmp_path):
    exe = console_script("focus-data")
    out = tmp_path / "d" / "template.jsonl"
    r = subprocess.run([exe, "describe", str(ann_file), "-o", str(out), "--limit", "4", "--seed", "2"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = read_jsonl(out)
    assert len(rows) == 4 and all(row["params"]["run_seed"] == 2 and row["params"]["seed"] ==
                                  image_seed(2, row["image"]) for row in rows)
    assert '"described": 4' in r.stderr
    # Wrong usage (a value not among the choices) exits 2 and lists the choices.
    for args, choices in ((["--split", "dev"], ("train", "val", "test")),
                          (["--backend", "gpt"], ("template", "openai", "vllm", "transformers"))):
        r = subprocess.run([exe, "describe", str(ann_file), "-o", str(out), *args], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (args, r.stderr)
        assert args[0] in r.stderr and all(c in r.stderr for c in choices), r.stderr
    for args, needle in ((["--backend", "vllm", "--model", "m"], "pip install focusclip[vllm]"),
                         (["--prompt", "pose-v0"], "pose-v1")):
        r = subprocess.run([exe, "describe", str(ann_file), "-o", str(out), *args], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 1, (args, r.stderr)
        err_lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
        assert len(err_lines) == 1 and needle in err_lines[0] and "Traceback" not in r.stderr


def test_latest_descriptions_names_a_record_missing_fields(tmp_path):
    import pytest as _pytest

    from focusclip.core.errors import FocusError
    from focusclip.pipeline.describe.stage import latest_descriptions

    path = tmp_path / "d.jsonl"
    path.write_text('{"image": "a.jpg", "description": "x"}\n')
    with _pytest.raises(FocusError, match="record 1 lacks describer, backend, prompt_id, prompt_sha"):
        latest_descriptions(path)


def test_cli_exits_1_when_no_server_answers(ann_file, tmp_path):
    """A closed port: describe waits --server-wait seconds for /v1/models, then stops with one line
    and leaves no output file (not an empty one)."""
    import socket
    import time

    with socket.socket() as s:      # a loopback port with nothing listening on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key = "test-key-never-printed"
    t0 = time.monotonic()
    r = subprocess.run([console_script("focus-data"), "describe", str(ann_file), "-o", str(tmp_path / "d.jsonl"),
                        "--backend", "openai", "--model", "m", "--base-url", f"http://127.0.0.1:{port}/v1",
                        "--limit", "2", "--max-retries", "0", "--timeout", "2", "--server-wait", "2"],
                       capture_output=True, text=True, timeout=60, env={**__import__("os").environ,
                                                                         "OPENAI_API_KEY": key})
    assert r.returncode == 1, r.stderr
    assert time.monotonic() - t0 < 30
    err_lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(err_lines) == 1 and f"no server answered at http://127.0.0.1:{port}/v1/models in 2 s" in err_lines[0]
    assert "Traceback" not in r.stderr and key not in r.stderr + r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotations.jsonl"]
