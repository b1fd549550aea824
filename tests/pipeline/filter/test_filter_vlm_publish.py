"""describe (an image-grounded prompt, a loopback VLM server) → filter → publish → `datasets.load_dataset`:
each caption's check results come back as columns."""
from __future__ import annotations

import dataclasses

from PIL import Image

from focusclip.core.io import read_jsonl, write_jsonl
from focusclip.data.records import write_annotations
from focusclip.pipeline.filter.stage import run_filter
from focusclip.pipeline.publish.stage import PublishOptions, run_publish
from tests.pipeline.describe.test_describe import describe_flat
from tests.pipeline.describe.test_describe_vlm import VLMServer, synthetic
from tests.pipeline.filter.test_filter_vlm import GOOD
from tests.pipeline.publish.test_publish import load_offline


def test_published_captions_carry_their_check_results_and_load_back(tmp_path):
    folder, (ann,) = synthetic(tmp_path)
    anns = []
    for name, tint in (("a.jpg", 0), ("b.jpg", 40), ("c.jpg", 80)):   # three photos of one pose
        Image.open(folder / "synthetic.jpg").point(lambda v, t=tint: min(255, v + t)).save(folder / name)
        anns.append(dataclasses.replace(ann, image=name))
    write_annotations(tmp_path / "ann.jsonl", anns)
    # The model says the same for a.jpg and b.jpg (it ignored them) and something else for c.jpg
    server = VLMServer(lambda body: GOOD if len(server.bodies) < 3 else GOOD.replace("sunny park", "gym"))
    try:
        describe_flat(tmp_path / "ann.jsonl", tmp_path / "d.jsonl", backend="openai", model="vlm",
                      base_url=server.url, prompt_id="pose-vlm-v1", images=folder, concurrency=1)
    finally:
        server.close()
    order = [r["image"] for r in read_jsonl(tmp_path / "d.jsonl")]
    run_filter(tmp_path / "d.jsonl", tmp_path / "ann.jsonl", tmp_path / "k.jsonl")
    kept = list(read_jsonl(tmp_path / "k.jsonl"))
    rejected = list(read_jsonl(tmp_path / "k.rejected.jsonl"))
    assert [r["image"] for r in kept] == [order[2]]
    assert sorted(r["image"] for r in rejected) == sorted(order[:2]) and {r["reason"] for r in rejected} == \
        {"ignores_image"}
    # one rejected caption published all the same: its record keeps the filter's reason beside its checks
    taken_back = {**rejected[0], "checks": kept[0]["checks"]}
    write_jsonl(tmp_path / "published.jsonl", kept + [taken_back])
    # a template describer's unfiltered captions: no check ran
    unfiltered = [{"image": a.image, "describer": "template", "backend": "template", "description": GOOD,
                   "prompt_id": "pose-v1", "prompt_sha": "s", "params": {}} for a in anns]
    write_jsonl(tmp_path / "template.jsonl", unfiltered)
    run_publish(PublishOptions(tmp_path / "ann.jsonl", {"vlm": tmp_path / "published.jsonl",
                                                        "template": tmp_path / "template.jsonl"}, tmp_path / "out"))
    got = load_offline(tmp_path / "out", ["vlm", "template"], tmp_path / "hf")
    rows = {r["image"]: r for r in got["vlm"]["validation"]}
    assert rows[order[2]]["checks_passed"] == kept[0]["checks"] and rows[order[2]]["check_failures"] == []
    back = rows[taken_back["image"]]
    assert back["check_failures"] == [{"check": "ignores_image", "reason": taken_back["reason_detail"]}]
    assert back["checks_passed"] == [c for c in kept[0]["checks"] if c != "ignores_image"]
    assert "ignores_image" in kept[0]["checks"] and "unmarked" in kept[0]["checks"]
    assert all(r["checks_passed"] == [] and r["check_failures"] == [] for r in got["template"]["validation"])
    card = (tmp_path / "out" / "README.md").read_text()
    assert "pose-vlm-v1.system.txt" in card and "never say" in card
