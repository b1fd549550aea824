"""`run_publish`: fixtures in the real formats → hub folder → `datasets.load_dataset` offline, the card,
images, shards, reruns. Loading runs in a subprocess so the offline variables and a fresh HF_HOME take
effect before `datasets` is imported."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from focusclip.pipeline.publish.stage import PublishOptions, run_publish

GPT, TEMPLATE = "gpt-4o-mini", "template"
IMAGES_TRAIN = ["015601864.jpg", "015599452.jpg", "005808361.jpg", "086617615.jpg"]
IMAGES_VAL = ["060111501.jpg", "070807258.jpg"]
IMAGES_TEST = ["000001163.jpg", "000003072.jpg"]
SHARD = "{}-{:05d}-of-{:05d}.parquet"


# ---------------------------------------------------------------- fixtures in the real formats

def _person(pid: int, vis: list[int], full: bool = True, dx: float = 0.0) -> dict:
    kpts = [[-1.0, -1.0] if v == 0 else [100.5 + 3.25 * j + dx, 200.125 + 2 * j] for j, v in enumerate(vis)]
    return {"id": pid, "center": [150.0 + dx, 220.5] if full else None, "scale": 2.4170 if full else None,
            "head_box": [90.0, 10.5, 130.25, 60.0] if full else None, "kpts": kpts, "kpts_vis": vis}


def annotation_records() -> list[dict]:
    """docs/design.md §3.1 records; 086617615.jpg appears twice (the last one wins)."""
    vis_a = [2, 2, 1, 2, 2, 1, 2, 2, 2, 2, 1, 2, 2, 2, 1, 2]
    vis_b = [0, 0, 2, 2, 0, 0, 2, 2, 2, 2, 0, 1, 2, 2, 1, 0]
    base = {"width": 1280, "height": 720, "video_id": "aAOusnrSsHI", "video_frame": 7, "activity_id": 975,
            "category": "sports", "activity": "curling", "single_person": [0]}
    recs = [
        {**base, "image": IMAGES_TRAIN[0], "split": "train", "people": [_person(0, vis_a)]},
        {**base, "image": IMAGES_TRAIN[1], "split": "train", "single_person": [],
         "people": [_person(0, vis_a), _person(1, vis_b, full=False, dx=40.75)]},
        {"image": IMAGES_TRAIN[2], "split": "train", "width": None, "height": None, "video_id": None,
         "video_frame": None, "activity_id": -1, "category": "", "activity": "", "single_person": [0],
         "people": [_person(0, vis_b)]},
        {**base, "image": IMAGES_TRAIN[3], "split": "train", "activity": "stale", "single_person": [], "people": []},
        {**base, "image": IMAGES_VAL[0], "split": "val", "category": "home activities",
         "activity": "vacuuming, light effort", "people": [_person(0, vis_b, dx=1.5)]},
        {**base, "image": IMAGES_VAL[1], "split": "val", "video_frame": 0, "people": [_person(0, vis_a)]},
        {**base, "image": IMAGES_TEST[0], "split": "test", "people": [_person(0, [0] * 16, full=True)]},
        {**base, "image": IMAGES_TEST[1], "split": "test", "single_person": [], "people": []},
        {**base, "image": IMAGES_TRAIN[3], "split": "train", "activity_id": 12, "category": "bicycling",
         "activity": "mountain", "people": [_person(0, vis_a, dx=-2.0)]},
    ]
    return recs


def _desc(image: str, describer: str, text: str, **kw) -> dict:
    """A docs/design.md §3.2 description record as `describe` writes it and `filter` keeps it."""
    rec = {"image": image, "describer": describer, "backend": "openai", "description": text,
           "prompt_id": "pose-v1", "prompt_sha": "3f2a9c", "model": describer,
           "params": {"temperature": 0.5, "max_tokens": 512, "seed": 0}, "finish_reason": "stop",
           "usage": {"prompt_tokens": 812, "completion_tokens": 143}, "created": "2026-01-02T03:04:05Z",
           "checks": ["non_empty", "count_matches"]}
    rec.update(kw)
    return rec


def description_records() -> dict[str, list[dict]]:
    gpt = [_desc(im, GPT, f"There is one person in the image who is curling ({im}).")
           for im in IMAGES_TRAIN + IMAGES_VAL + IMAGES_TEST]
    gpt.insert(1, _desc(IMAGES_TRAIN[0], GPT, "older text, replaced below"))
    gpt[0], gpt[1] = gpt[1], gpt[0]   # the older record comes first in the file
    gpt.append(_desc("999999999.jpg", GPT, "an image the annotations do not have"))
    gpt.append(_desc(IMAGES_VAL[0], GPT, "A second prompt: their left knee is bent.\nTwo lines, ü é 中文.",
                     prompt_id="pose-v2", prompt_sha="77bb01", params={"temperature": 1.0, "top_p": 0.9}))
    template = [_desc(im, TEMPLATE, f"There is one person in the image ({im}).", backend="template",
                      prompt_id="template-v1", prompt_sha=f"t{i}", params={}, model=None)
                for i, im in enumerate(IMAGES_TRAIN + IMAGES_VAL)]   # one hash per filled prompt
    for rec in template:
        del rec["model"], rec["checks"]
    return {GPT: gpt, TEMPLATE: template}


FILTER_REPORT = {"stage": "filter", "counts": {"read": 12, "kept": 10, "rejected.count_matches": 2},
                 "skipped": {"image not in annotations": 1}, "metrics": {"distinct_2": 0.8125, "mean_words": 41.5},
                 "timings": {"total_s": 1.0}, "options": {"output": "/home/someone/secret/path"},
                 "outputs": {"kept": "/home/someone/secret/kept.jsonl"}, "note": "/home/someone/secret/x"}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def make_inputs(root: Path) -> dict:
    """annotations.jsonl, descriptions/<name>.kept.jsonl (+ a filter report for gpt), prompt templates."""
    root.mkdir(parents=True, exist_ok=True)
    ann = write_jsonl(root / "annotations.jsonl", annotation_records())
    (root / "descriptions").mkdir(exist_ok=True)
    descs = {name: write_jsonl(root / "descriptions" / f"{name}.kept.jsonl", rows)
             for name, rows in description_records().items()}
    (root / "descriptions" / f"{GPT}.kept.report.json").write_text(json.dumps(FILTER_REPORT))
    prompts = root / "templates"
    prompts.mkdir(exist_ok=True)
    (prompts / "pose-v1.user.txt").write_text("Activity: ${activity}\nDescribe the pose of ${count} people.\n")
    return {"annotations": ann, "descriptions": descs, "prompts": prompts}


def make_media(root: Path, images: list[str], size=(40, 30)) -> tuple[Path, Path]:
    """Real JPEG images and 8-bit grayscale PNG heatmaps, different for every image."""
    img_dir, hm_dir = root / "images", root / "heatmaps"
    img_dir.mkdir(parents=True, exist_ok=True)
    hm_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in images:
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(img_dir / name, quality=90)
        hm = rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8)
        Image.fromarray(hm, mode="L").save(hm_dir / (Path(name).stem + ".png"))
    return img_dir, hm_dir


# ---------------------------------------------------------------- expectations, computed from the fixtures

def expected_rows(splits=("train", "validation")) -> dict[str, dict[str, list[dict]]]:
    """Per config and split, the rows the folder must hold, in the order of first appearance in the
    descriptions file, with the last record per (image, describer, prompt_sha) and the last annotation."""
    anns = {a["image"]: a for a in annotation_records()}
    hub = {"train": "train", "val": "validation", "test": "test"}
    out = {}
    for name, rows in description_records().items():
        latest: dict[tuple, dict] = {}
        for d in rows:
            latest[(d["image"], d["describer"], d["prompt_sha"])] = d
        per = {s: [] for s in splits}
        for d in latest.values():
            a = anns.get(d["image"])
            if a is None or hub[a["split"]] not in per:
                continue
            per[hub[a["split"]]].append(_expected_row(a, d))
        out[name] = per
    return out


def _expected_row(a: dict, d: dict) -> dict:
    people = [{"id": p["id"], "center": p["center"], "scale": p["scale"], "kpts": p["kpts"],
               "kpts_vis": [int(v > 0) for v in p["kpts_vis"]], "visibility": p["kpts_vis"],
               "head_box": p["head_box"]} for p in a["people"]]
    activity = f"{a['category']}, {a['activity']}" if a["category"] else a["activity"]
    return {"image": a["image"], "video_id": a["video_id"], "video_frame": a["video_frame"],
            "activity_id": a["activity_id"], "activity": activity, "count": len(a["people"]),
            "people": people, "description": d["description"], "category": a["category"], "split": a["split"],
            "width": a["width"], "height": a["height"], "single_person": a["single_person"],
            "describer": d["describer"], "backend": d["backend"], "model": d.get("model"),
            "prompt_id": d["prompt_id"], "prompt_sha": d["prompt_sha"], "params": d["params"],
            "checks_passed": d.get("checks", []), "check_failures": []}


# ---------------------------------------------------------------- loading back, offline, in a fresh process

LOADER = r"""
import hashlib, json, sys
import numpy as np
import datasets
root, configs = sys.argv[1], sys.argv[2].split(",")
out = {}
for config in configs:
    dd = datasets.load_dataset(root, config)
    out[config] = {}
    for split, ds in dd.items():
        rows = []
        for r in ds:
            r = dict(r)
            r["params"] = json.loads(r["params"])
            for col in ("image_data", "heatmap"):
                if col in r:
                    im = r[col]
                    r[col] = {"size": list(im.size), "mode": im.mode,
                              "sha": hashlib.sha256(np.asarray(im).tobytes()).hexdigest()}
            rows.append(r)
        out[config][split] = rows
print(json.dumps(out))
"""


def load_offline(folder: Path, configs: list[str], hf_home: Path) -> dict:
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home),
           "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    env.pop("HF_TOKEN", None)
    done = subprocess.run([sys.executable, "-c", LOADER, str(folder), ",".join(configs)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def pixels_sha(path: Path) -> dict:
    import hashlib

    im = Image.open(path)
    return {"size": list(im.size), "mode": im.mode, "sha": hashlib.sha256(np.asarray(im).tobytes()).hexdigest()}


def _refuse(*args, **kwargs):
    raise AssertionError(f"network access during publish: {args}")


def _guard(mp: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test: building must stay offline."""
    mp.setattr(socket.socket, "connect", _refuse)
    mp.setattr(socket, "create_connection", _refuse)


@pytest.fixture
def no_network(monkeypatch):
    _guard(monkeypatch)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One folder built from the fixtures (two configs), shared by the read-only tests below."""
    root = tmp_path_factory.mktemp("publish")
    inputs = make_inputs(root / "in")
    mp = pytest.MonkeyPatch()
    try:
        _guard(mp)
        report = run_publish(PublishOptions(inputs["annotations"], inputs["descriptions"], root / "out",
                                            prompts_dir=inputs["prompts"]))
    finally:
        mp.undo()
    return {"root": root, "out": root / "out", "report": report, "inputs": inputs}


# ---------------------------------------------------------------- tests

def test_round_trip_returns_exactly_the_records_per_config_and_split(built):
    loaded = load_offline(built["out"], [GPT, TEMPLATE], built["root"] / "hf")
    expected = expected_rows()
    assert set(loaded) == {GPT, TEMPLATE}
    for name in (GPT, TEMPLATE):
        assert set(loaded[name]) == {"train", "validation"}
        for split in ("train", "validation"):
            assert loaded[name][split] == expected[name][split], (name, split)
    # the fixtures exercise what they are meant to: last record wins, two prompts for one image
    gpt_train = {r["image"]: r for r in loaded[GPT]["train"]}
    assert gpt_train[IMAGES_TRAIN[0]]["description"].startswith("There is one person")
    assert gpt_train[IMAGES_TRAIN[3]]["activity"] == "bicycling, mountain"
    assert sorted(r["prompt_id"] for r in loaded[GPT]["validation"] if r["image"] == IMAGES_VAL[0]) == \
        ["pose-v1", "pose-v2"]
    assert gpt_train[IMAGES_TRAIN[2]]["activity"] == "" and gpt_train[IMAGES_TRAIN[2]]["video_id"] is None


def test_report_counts_rows_and_skips(built):
    rep = built["report"].to_dict()
    assert rep["counts"][f"{GPT}/train"] == 4 and rep["counts"][f"{GPT}/validation"] == 3
    assert rep["counts"][f"{TEMPLATE}/train"] == 4 and rep["counts"][f"{TEMPLATE}/validation"] == 2
    assert rep["skipped"] == {f"{GPT}: duplicate key (last record kept)": 1,
                              f"{GPT}: image not in annotations": 1,
                              f"{GPT}: test split not published": 2}
    assert rep["skipped_examples"][f"{GPT}: image not in annotations"] == ["999999999.jpg"]
    on_disk = json.loads((built["out"] / "report.json").read_text())
    assert on_disk["counts"] == rep["counts"] and on_disk["stage"] == "publish"
    assert not (built["root"] / "out.incomplete").exists()


def test_card_parses_and_its_configs_point_at_the_shards(built):
    from huggingface_hub import DatasetCard

    out = built["out"]
    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "bsd-2-clause"
    assert card.data.size_categories == ["n<1K"] and card.data.task_categories
    configs = {c["config_name"]: c for c in card.data.configs}
    assert set(configs) == {GPT, TEMPLATE}
    listed = set()
    for name, c in configs.items():
        splits = {f["split"]: f["path"] for f in c["data_files"]}
        assert set(splits) == {"train", "validation"}
        for split, pattern in splits.items():
            files = sorted(out.glob(pattern))
            assert [f.name for f in files] == [SHARD.format(split, 0, 1)], pattern
            listed |= set(files)
    assert listed == set(out.glob("*/*.parquet"))     # no shard is left out of the card
    infos = {i["config_name"]: i for i in card.data.dataset_info}
    assert {s["name"]: s["num_examples"] for s in infos[GPT]["splits"]} == {"train": 4, "validation": 3}
    body = card.text
    assert "arXiv:2403.06904" in body and "FocusCLIP: Multimodal Subject-Level Guidance" in body
    assert body.count("Describe the pose of ${count} people.") == 1  # pose-v1 template text, once
    assert "- Prompt `pose-v1` (sha `3f2a9c`), 6 rows." in body
    # the template describer is rule-based: no prompt nor sampling settings shown for it (issue 31)
    assert "- 6 rows written by the rule-based `template` describer" in body and "template-v1" not in body
    assert body.count("- Sampling parameters:") == 1 and "- Model: `none` (6)" in body
    assert "| descriptions checked | 12 |\n| kept | 10 (83.3 %) |" in body and "| distinct_2 | 0.8125 |" in body
    assert "counts." not in body and "metrics." not in body
    assert "/home/someone/secret" not in body                          # report options stay out
    assert "Filter statistics: none (no template.kept.report.json beside template.kept.jsonl)" in body
    assert "**0-based**" in body and "exp(-(dx²" in body
    assert f'load_dataset("path/to/this/folder", "{GPT}")' in body
    assert '`{"max_tokens": 512, "temperature": 0.5}` (6 rows)' in body     # the image's own seed left out


def test_with_images_embeds_and_decodes_images_and_heatmaps_across_shards(tmp_path, no_network):
    inputs = make_inputs(tmp_path / "in")
    img_dir, hm_dir = make_media(tmp_path / "in", IMAGES_TRAIN + IMAGES_VAL + IMAGES_TEST)
    out = tmp_path / "out"
    report = run_publish(PublishOptions(inputs["annotations"], {GPT: inputs["descriptions"][GPT]}, out,
                                        include_test=True, with_images=True, images_dir=img_dir,
                                        heatmaps_dir=hm_dir, max_shard_size="6KB"))
    files = report.extra["configs"][GPT]
    assert [len(files[s]["files"]) for s in ("train", "validation", "test")] == [4, 3, 2]  # about a row per shard
    assert sorted(p.name for p in (out / GPT).glob("test-*")) == [SHARD.format("test", i, 2) for i in range(2)]
    loaded = load_offline(out, [GPT], tmp_path / "hf")[GPT]
    expected = expected_rows(("train", "validation", "test"))[GPT]
    for split in ("train", "validation", "test"):
        rows = loaded[split]
        assert [{k: v for k, v in r.items() if k not in ("image_data", "heatmap")} for r in rows] == expected[split]
        for r in rows:
            assert r["image_data"] == pixels_sha(img_dir / r["image"])
            assert r["heatmap"] == pixels_sha(hm_dir / (Path(r["image"]).stem + ".png"))
            assert r["heatmap"]["mode"] == "L"


def _peak_python_memory_of_publish(root: Path, n: int) -> tuple[int, int]:
    """(peak traced bytes while publishing n images of ~28 KB, their total size)."""
    inputs = make_inputs(root / "in")
    names = [f"{i:09d}.jpg" for i in range(n)]
    write_jsonl(inputs["annotations"], [{**annotation_records()[0], "image": name} for name in names])
    write_jsonl(inputs["descriptions"][GPT], [_desc(name, GPT, f"text {name}") for name in names])
    img_dir, _ = make_media(root / "in", names, size=(200, 150))
    tracemalloc.start()
    try:
        run_publish(PublishOptions(inputs["annotations"], {GPT: inputs["descriptions"][GPT]}, root / "out",
                                   with_images=True, images_dir=img_dir, max_shard_size="200KB"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, sum((img_dir / name).stat().st_size for name in names)


def test_images_are_streamed_not_held_in_memory(tmp_path):
    """Tripling the images adds ~0.7 MB of files but (almost) no Python memory at the peak."""
    _peak_python_memory_of_publish(tmp_path / "warm", 2)      # imports and caches out of the way
    peak_small, total_small = _peak_python_memory_of_publish(tmp_path / "small", 12)
    peak_big, total_big = _peak_python_memory_of_publish(tmp_path / "big", 36)
    added = total_big - total_small
    assert added > 500_000
    assert peak_big - peak_small < added / 4, (peak_small, peak_big, added)


def test_rerun_keeps_an_up_to_date_folder_rebuilds_a_stale_one_and_force_rebuilds(tmp_path, no_network):
    inputs = make_inputs(tmp_path / "in")
    out = tmp_path / "out"
    descs = {TEMPLATE: inputs["descriptions"][TEMPLATE]}
    run_publish(PublishOptions(inputs["annotations"], descs, out))
    shard = out / TEMPLATE / SHARD.format("train", 0, 1)
    stamp = shard.stat().st_mtime_ns
    again = run_publish(PublishOptions(inputs["annotations"], descs, out))
    assert again.extra["up_to_date"] and shard.stat().st_mtime_ns == stamp
    assert again.counts[f"{TEMPLATE}/train"] == 4
    forced = run_publish(PublishOptions(inputs["annotations"], descs, out, force=True))
    assert not forced.extra["up_to_date"] and shard.stat().st_mtime_ns != stamp
    rows = description_records()[TEMPLATE][:2]               # the inputs change: fewer rows
    write_jsonl(descs[TEMPLATE], rows)
    stale = run_publish(PublishOptions(inputs["annotations"], descs, out))
    assert not stale.extra["up_to_date"] and stale.counts[f"{TEMPLATE}/train"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "report.json", TEMPLATE]


def test_an_empty_split_is_left_out_and_the_rest_loads(tmp_path):
    from huggingface_hub import DatasetCard

    inputs = make_inputs(tmp_path / "in")
    only_train = [d for d in description_records()[TEMPLATE] if d["image"] in IMAGES_TRAIN]
    write_jsonl(inputs["descriptions"][TEMPLATE], only_train)
    out = tmp_path / "out"
    report = run_publish(PublishOptions(inputs["annotations"], {TEMPLATE: inputs["descriptions"][TEMPLATE]}, out))
    assert report.counts[f"{TEMPLATE}/validation"] == 0
    assert sorted(p.name for p in (out / TEMPLATE).iterdir()) == [SHARD.format("train", 0, 1)]
    card = DatasetCard.load(out / "README.md")
    assert [f["split"] for f in card.data.configs[0]["data_files"]] == ["train"]
    assert "| validation | 0 | 0 |" in card.text
    loaded = load_offline(out, [TEMPLATE], tmp_path / "hf")[TEMPLATE]
    assert set(loaded) == {"train"} and loaded["train"] == expected_rows()[TEMPLATE]["train"]
