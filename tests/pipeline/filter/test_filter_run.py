"""run_filter end to end: the template describer's output, planted bad descriptions, bad input,
check selection, regeneration rounds and the console script."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from focusclip.core.errors import FocusError
from focusclip.core.report import Report
from focusclip.data.records import write_annotations
from focusclip.data.synthetic.world import WorldConfig, training_image
from focusclip.pipeline.describe.stage import DescribeOptions, latest_descriptions, run_describe
from focusclip.pipeline.filter.stage import rejected_path_for, run_filter
from focusclip.pipeline.filter.checks import FilterConfig
from focusclip.pipeline.filter.records import read_latest_descriptions
from tests.conftest import console_script

N_IMAGES = 240


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """Generated annotations (1–3 people per image) and their template descriptions."""
    root = tmp_path_factory.mktemp("filter_world")
    anns = [training_image(7, i, WorldConfig())[0] for i in range(N_IMAGES)]
    write_annotations(root / "annotations.jsonl", anns)
    desc = root / "descriptions" / "template.jsonl"
    run_describe(DescribeOptions(root / "annotations.jsonl", desc, backend="template"), progress=False)
    return {"root": root, "annotations": root / "annotations.jsonl", "descriptions": desc, "anns": anns}


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_template_output_is_kept(world, tmp_path):
    out = tmp_path / "template.kept.jsonl"
    report = run_filter(world["descriptions"], world["annotations"], out)
    n = len(_rows(world["descriptions"]))
    kept, rejected = _rows(out), _rows(rejected_path_for(out))
    assert n > 200 and len(kept) + len(rejected) == n
    assert len(kept) / n >= 0.95, [(r["image"], r["reason_detail"]) for r in rejected]
    assert all(r["checks"] == ["empty", "no_image", "refusal", "reasoning", "truncated", "length", "leak", "repetition",
                               "excluded", "marks", "ignores_image", "people_count", "unmarked", "structured", "posture",
                               "arms"] for r in kept)
    saved = json.loads(out.with_suffix(".report.json").read_text())
    assert saved["counts"]["kept"] == len(kept) and saved["kept_fraction"] >= 0.95
    m = saved["metrics"]
    assert m["n_texts"] == len(kept) and m["words"]["min"] >= FilterConfig().min_words
    for key in ("mtld", "trigram_repetition", "tfidf_self_similarity", "flesch_kincaid_grade"):
        assert isinstance(m[key], float), key
    assert report.counts["kept"] == len(kept)


def _planted(world) -> tuple[list[dict], dict[str, str]]:
    """One bad description per reason, each on its own image, made from that image's good record."""
    good = {r["image"]: r for r in _rows(world["descriptions"])}
    anns = {a.image: a for a in world["anns"]}
    by = {"standing": [], "lowered": [], "one": []}
    for img, a in anns.items():
        t = good.get(img, {}).get("description", "")
        if len(a.people) == 1 and "The person is standing" in t:
            by["standing"].append(img)
        if len(a.people) == 1 and "their left arm lowered" in t:
            by["lowered"].append(img)
        if len(a.people) == 1 and img in good:
            by["one"].append(img)
    imgs = iter(by["one"])
    plan = {
        "empty": lambda t: "",
        "refusal": lambda t: "I'm sorry, but I cannot describe people in images.",
        "truncated": lambda t: t.rsplit(" ", 3)[0],
        "length": lambda t: "There is one person in the image.",
        "leak": lambda t: t + " Their left wrist is at (212.0, 118.5).",
        "repetition": lambda t: t + (" " + t.split(". ")[-1]) * 3,
        "people_count": lambda t: t.replace("There is one person", "There are two people"),
    }
    rows, want = [], {}
    for reason, f in plan.items():
        img = next(i for i in imgs if i not in by["standing"][:1] + by["lowered"][:1])
        rows.append({**good[img], "description": f(good[img]["description"])})
        want[img] = reason
    img = by["standing"][0]
    rows.append({**good[img], "description": good[img]["description"].replace("is standing", "is sitting")})
    want[img] = "posture"
    img = next(i for i in by["lowered"] if i not in want)
    rows.append({**good[img], "description": good[img]["description"].replace("left arm lowered",
                                                                              "left arm raised")})
    want[img] = "arms"
    return rows, want


def test_planted_bad_descriptions_rejected_with_their_reason(world, tmp_path):
    rows, want = _planted(world)
    # The planted records come last: the last record per key wins over the good one.
    desc = _write(tmp_path / "planted.jsonl", _rows(world["descriptions"]) + rows)
    out = tmp_path / "planted.kept.jsonl"
    report = run_filter(desc, world["annotations"], out)
    rejected = {r["image"]: r for r in _rows(rejected_path_for(out))}
    got = {img: rejected[img]["reason"] if img in rejected else "kept" for img in want}
    assert got == want
    assert all(r["reason_detail"] for r in rejected.values())
    assert report.extra["rejected_by_reason"].keys() >= set(want.values())
    kept_images = {r["image"] for r in _rows(out)}
    assert not kept_images & set(want)
    assert report.counts["superseded"] == len(rows)


def test_check_selection(world, tmp_path):
    rows, want = _planted(world)
    desc = _write(tmp_path / "planted.jsonl", _rows(world["descriptions"]) + rows)
    out = tmp_path / "sel.kept.jsonl"
    run_filter(desc, world["annotations"], out, checks=["arms", "posture"])
    rejected = {r["image"]: r["reason"] for r in _rows(rejected_path_for(out))}
    assert set(rejected.values()) <= {"arms", "posture"} and {"arms", "posture"} <= set(rejected.values())
    assert all(r["checks"] == ["posture", "arms"] for r in _rows(out))
    run_filter(desc, world["annotations"], out, skip_checks=["leak", "refusal"])
    rejected = {r["image"]: r["reason"] for r in _rows(rejected_path_for(out))}
    refusal_img = next(i for i, why in want.items() if why == "refusal")
    leak_img = next(i for i, why in want.items() if why == "leak")
    assert leak_img not in rejected            # nothing else is wrong with it
    assert rejected[refusal_img] == "length"  # the next check that catches it
    with pytest.raises(FocusError, match="unknown check 'arm'"):
        run_filter(desc, world["annotations"], out, checks=["arm"])
    with pytest.raises(FocusError, match="no check is left"):
        run_filter(desc, world["annotations"], out, checks=["arms"], skip_checks=["arms"])


def test_images_not_in_annotations(world, tmp_path):
    rows = _rows(world["descriptions"])
    stray = [{**rows[0], "image": f"999{i:06d}.jpg"} for i in range(3)]
    desc = _write(tmp_path / "mixed.jsonl", rows + stray)
    report = run_filter(desc, world["annotations"], tmp_path / "mixed.kept.jsonl")
    assert report.skipped["image not in the annotations"] == 3
    assert report.counts["kept"] + report.counts["rejected"] == len(rows)
    only_stray = _write(tmp_path / "stray.jsonl", stray)
    with pytest.raises(FocusError, match="none of the 3 descriptions is of an image in"):
        run_filter(only_stray, world["annotations"], tmp_path / "stray.kept.jsonl")


def test_torn_last_line_and_malformed_records(world, tmp_path):
    rows = _rows(world["descriptions"])[:20]
    text = "".join(json.dumps(r) + "\n" for r in rows[:-1])
    text += json.dumps({"image": rows[0]["image"], "description": "no describer"}) + "\n"
    text += json.dumps(rows[-1])[:57]                     # a crash mid-write
    desc = tmp_path / "torn.jsonl"
    desc.write_text(text)
    report = run_filter(desc, world["annotations"], tmp_path / "torn.kept.jsonl")
    assert report.skipped["torn last line (ignored)"] == 1
    assert report.skipped["record without describer, prompt_sha"] == 1
    assert report.counts["descriptions"] == 19
    bad_middle = tmp_path / "bad.jsonl"
    bad_middle.write_text(json.dumps(rows[0]) + "\n{not json\n" + json.dumps(rows[1]) + "\n")
    with pytest.raises(FocusError, match="line 2 is not valid JSON"):
        run_filter(bad_middle, world["annotations"], tmp_path / "bad.kept.jsonl")


def test_reader_agrees_with_describe_latest(world, tmp_path):
    rows = _rows(world["descriptions"])
    desc = _write(tmp_path / "dup.jsonl", rows + [{**rows[3], "description": "newer."}])
    mine = read_latest_descriptions(desc, Report("t"))
    theirs = latest_descriptions(desc)
    assert mine.keys() == theirs.keys()
    assert all(mine[k]["description"] == theirs[k].description for k in mine)


def test_bad_paths(world, tmp_path):
    with pytest.raises(FocusError, match="descriptions file not found"):
        run_filter(tmp_path / "nope.jsonl", world["annotations"], tmp_path / "k.jsonl")
    with pytest.raises(FocusError, match="would overwrite"):
        run_filter(world["descriptions"], world["annotations"], world["descriptions"])
    with pytest.raises(FocusError, match="does not end in .jsonl"):
        run_filter(world["descriptions"], world["annotations"], tmp_path / "k.txt")
    empty = _write(tmp_path / "empty.jsonl", [])
    with pytest.raises(FocusError, match="holds no description records"):
        run_filter(empty, world["annotations"], tmp_path / "k.jsonl")


def test_regenerate_replaces_rejected_descriptions(world, tmp_path):
    rows, want = _planted(world)
    desc = _write(tmp_path / "regen.jsonl", _rows(world["descriptions"]) + rows)
    out = tmp_path / "regen.kept.jsonl"
    report = run_filter(desc, world["annotations"], out, regenerate=2, describe_options={"seed": 0})
    rounds = report.extra["rounds"]
    assert rounds[0]["images_sent"] == len(want) and rounds[0]["new_descriptions"] == len(want)
    assert report.counts["rejected"] == 0 and len(rounds) == 1   # round 2 had nothing left to do
    kept = {r["image"]: r for r in _rows(out)}
    assert set(want) <= set(kept)
    for img in want:   # the new record is the round-1 template text, under the same key
        assert kept[img]["params"]["round"] == 1 and kept[img]["describer"] == "template"
    history = _rows(rejected_path_for(out))
    assert {r["image"] for r in history} == set(want) and all(r["filter_round"] == 0 for r in history)
    assert len(_rows(desc)) == len(_rows(world["descriptions"])) + 2 * len(want)


class RoundBackend:
    """A describe backend that refuses in round 1 and answers with the template text from round 2 on
    (describe samples image i in round r with job_seed(seed, i, r))."""
    name = "template"

    def run(self, jobs, emit) -> None:
        from focusclip.pipeline.describe.types import Answer, job_seed
        from focusclip.pipeline.describe.template import template_description

        for job in jobs:
            text = ("I'm sorry, I cannot help with that." if job.seed == job_seed(0, job.image, 1)
                    else template_description(job.annotation, job.seed))
            emit(job, Answer(text, "stop", {}), None)


@pytest.mark.parametrize("rounds", [1, 2])
def test_regenerate_rounds_are_bounded(world, tmp_path, rounds):
    rows, want = _planted(world)
    desc = _write(tmp_path / "rounds.jsonl", _rows(world["descriptions"]) + rows)
    out = tmp_path / "rounds.kept.jsonl"
    report = run_filter(desc, world["annotations"], out, regenerate=rounds,
                        describe_options={"backend_obj": RoundBackend()})
    assert [r["images_sent"] for r in report.extra["rounds"]] == [len(want)] * rounds
    if rounds == 1:   # round 1 only brought refusals: every planted image is still rejected
        assert report.extra["rejected_by_reason"] == {"refusal": len(want)}
        assert {r["image"] for r in _rows(out)}.isdisjoint(want)
    else:
        assert report.counts["rejected"] == 0 and set(want) <= {r["image"] for r in _rows(out)}
    history = _rows(rejected_path_for(out))
    assert len(history) == 2 * len(want)   # the planted records and the round-1 refusals
    assert sorted({r["filter_round"] for r in history}) == [0, 1]
    assert report.options["describe_options"] == {"backend_obj": "RoundBackend"}


def test_regenerate_failure_keeps_the_judged_outputs(world, tmp_path):
    rows, want = _planted(world)
    desc = _write(tmp_path / "fail.jsonl", _rows(world["descriptions"]) + rows)
    out = tmp_path / "fail.kept.jsonl"
    with pytest.raises(FocusError, match="needs a model"):
        run_filter(desc, world["annotations"], out, regenerate=1, describe_options={"backend": "openai"})
    saved = json.loads(out.with_suffix(".report.json").read_text())
    assert "needs a model" in saved["regenerate_error"] and saved["counts"]["rejected"] == len(want)
    assert len(_rows(out)) == saved["counts"]["kept"] > 0


def test_regenerate_bad_option(world, tmp_path):
    with pytest.raises(FocusError, match="unknown describe option 'colour'"):
        run_filter(world["descriptions"], world["annotations"], tmp_path / "k.jsonl", regenerate=1,
                   describe_options={"colour": "red"})


def test_cli(world, tmp_path):
    rows, want = _planted(world)
    desc = _write(tmp_path / "cli.jsonl", _rows(world["descriptions"]) + rows)
    out = tmp_path / "cli.kept.jsonl"
    exe = console_script("focus-data")
    r = subprocess.run([exe, "filter", str(desc), "--annotations", str(world["annotations"]), "-o", str(out),
                        "--skip-check", "leak", "--set", "max_words=500"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "kept" in r.stderr and "rejected" in r.stderr
    saved = json.loads(out.with_suffix(".report.json").read_text())
    assert saved["options"]["config"]["max_words"] == 500 and "leak" not in saved["options"]["checks"]
    assert saved["counts"]["rejected"] == len(want) - 1 == sum(saved["rejected_by_reason"].values())
    # User errors: one line, exit 1, no traceback.
    for args, msg in (
        (["--check", "bogus"], "unknown check 'bogus'"),
        (["--set", "max_words=lots"], "not a valid value for max_words"),
    ):
        r = subprocess.run([exe, "filter", str(desc), "--annotations", str(world["annotations"]),
                            "-o", str(out), *args], capture_output=True, text=True)
        assert r.returncode == 1 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = subprocess.run([exe, "filter", str(tmp_path / "missing.jsonl"), "--annotations",
                        str(world["annotations"]), "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.startswith("error:") and "Traceback" not in r.stderr


def test_malformed_records_are_skipped_or_rejected_never_a_crash(world, tmp_path):
    rows = _rows(world["descriptions"])[:6]
    a, b, c, d = (dict(r) for r in rows[:4])
    del a["description"]                        # keyed, no text: rejected by `empty` (regenerate redoes it)
    b["description"] = {"text": "x"}            # keyed, not text: rejected by `empty`
    del c["backend"], c["prompt_id"]            # keyed, full text: judged as any other
    del d["describer"]                          # no key: skipped and counted
    src = _write(tmp_path / "mixed.jsonl", [a, b, c, d, *rows[4:]])
    out = tmp_path / "mixed.kept.jsonl"
    report = run_filter(src, world["annotations"], out)
    rejected = {r["image"]: r for r in _rows(rejected_path_for(out))}
    assert rejected[a["image"]]["reason_detail"] == "no description field"
    assert rejected[b["image"]]["reason_detail"] == "description is a dict, not text"
    kept = {r["image"] for r in _rows(out)}
    assert c["image"] in kept | set(rejected) and d["image"] not in kept | set(rejected)
    assert report.skipped == {"record without describer": 1}
    assert report.counts["kept"] + report.counts["rejected"] == 5
