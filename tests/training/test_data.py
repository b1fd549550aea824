"""Training data: sources (published folder, descriptions JSONL, original JSON), the shared
resize/crop of image and heatmap, flips, sampling, dynamic padding."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from focusclip.core.errors import FocusError
from focusclip.data.heatmaps import render_heatmaps, to_uint8
from focusclip.core.report import Report
from tests.training.fixtures import make_world
from focusclip.training.config import DataConfig
from focusclip.training.data import Collate, EpochBatchSampler, FocusDataset, SampleSpec
from focusclip.training.sources import load_items
from focusclip.training.text import swap_left_right, train_wordpiece

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("dworld"), n_train=12, n_val=4)


def _items(world, **kw):
    return load_items(str(world["descriptions"]), (), str(world["annotations"]), Report("t"), **kw)


def _dataset(world, train=False, **cfg):
    data = DataConfig(dataset=str(world["descriptions"]), annotations=str(world["annotations"]),
                      images=str(world["images"]), **cfg)
    spec = SampleSpec(64, (0.5,) * 3, (0.5,) * 3, with_heatmaps=True, train=train, seed=3)
    return FocusDataset(_items(world), data, spec)


def test_jsonl_folder_groups_describers_per_image(world):
    items = _items(world)
    assert len(items) == 16 and all(len(it.descriptions) == 2 for it in items)
    assert {tuple(it.describers) for it in items} == {("second", "template")}
    assert [it.split for it in items].count("val") == 4
    ann = json.loads(world["annotations"].read_text().splitlines()[0])
    np.testing.assert_allclose(items[0].kpts[0], np.array(ann["people"][0]["kpts"], np.float32))
    one = load_items(str(world["descriptions"]), ("template",), str(world["annotations"]), Report("t"))
    assert all(it.describers == ("template",) for it in one)
    with pytest.raises(FocusError, match="describer.*gpt-5 not found"):
        load_items(str(world["descriptions"]), ("gpt-5",), str(world["annotations"]), Report("t"))
    with pytest.raises(FocusError, match="need data.annotations"):
        load_items(str(world["descriptions"]), (), None, Report("t"))


def test_kept_jsonl_wins_and_rejected_records_are_skipped(world, tmp_path):
    d = tmp_path / "desc"
    d.mkdir()
    rows = [json.loads(x) for x in (world["descriptions"] / "template.jsonl").read_text().splitlines()]
    (d / "template.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    kept = [dict(r, description="KEPT " + r["description"], checks={"ok": True}) for r in rows[:5]]
    (d / "template.kept.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    (d / "template.rejected.jsonl").write_text(json.dumps(dict(rows[6], reason="too short")) + "\n")
    report = Report("t")
    items = load_items(str(d), (), str(world["annotations"]), report)
    assert len(items) == 5 and all(it.descriptions[0].startswith("KEPT") for it in items)


def test_original_captions_json_is_shifted_to_zero_based(world, tmp_path):
    anns = [json.loads(x) for x in world["annotations"].read_text().splitlines()]
    root = tmp_path / "captions" / "gpt-4"
    root.mkdir(parents=True)
    for split, part in (("train", anns[:12]), ("val", anns[12:])):
        recs = [{"image": a["image"], "video_id": "x", "video_frame": 1, "activity_id": 1, "activity": "a, b",
                 "count": 1, "people": [{"id": 0, "center": [1, 2], "scale": 1.0,
                                         "kpts": [[x + 1, y + 1] for x, y in a["people"][0]["kpts"]],
                                         "kpts_vis": [1 if v else 0 for v in a["people"][0]["kpts_vis"]]}],
                 "description": f"caption of {a['image']}"} for a in part]
        (root / f"{split}.json").write_text(json.dumps(recs))
    items = load_items(str(root.parent), (), None, Report("t"))
    assert [it.split for it in items] == ["train"] * 12 + ["val"] * 4
    assert items[0].describers == ("gpt-4",) and items[0].descriptions == (f"caption of {anns[0]['image']}",)
    lab = items[0].kpts_vis[0] > 0
    np.testing.assert_allclose(items[0].kpts[0][lab], np.array(anns[0]["people"][0]["kpts"], np.float32)[lab],
                               atol=1e-4)


def test_published_folder_loads_with_datasets(world, tmp_path):
    datasets = pytest.importorskip("datasets")
    anns = {a["image"]: a for a in map(json.loads, world["annotations"].read_text().splitlines())}
    root = tmp_path / "published"
    card = ["---", "configs:"]
    for describer in ("template", "second"):
        rows = {"train": [], "validation": []}
        for line in (world["descriptions"] / f"{describer}.jsonl").read_text().splitlines():
            d = json.loads(line)
            a = anns[d["image"]]
            p = a["people"][0]
            person = {"id": 0, "center": p["center"], "scale": p["scale"], "kpts": p["kpts"],
                      "kpts_vis": [1 if v else 0 for v in p["kpts_vis"]], "visibility": p["kpts_vis"],
                      "head_box": None}
            row = {"image": a["image"], "split": a["split"], "people": [person], "description": d["description"],
                   "describer": describer, "count": 1}
            if describer == "template":        # published --with-images: the JPEG bytes ride along
                row["image_data"] = {"bytes": (world["images"] / a["image"]).read_bytes(), "path": None}
            rows["train" if a["split"] == "train" else "validation"].append(row)
        card += [f"- config_name: {describer}", "  data_files:"]
        for split, rs in rows.items():
            (root / describer).mkdir(parents=True, exist_ok=True)
            ds = datasets.Dataset.from_list(rs)
            if "image_data" in ds.column_names:
                ds = ds.cast_column("image_data", datasets.Image())
            ds.to_parquet(str(root / describer / f"{split}-00000-of-00001.parquet"))
            card += [f"  - split: {split}", f"    path: {describer}/{split}-*.parquet"]
    (root / "README.md").write_text("\n".join(card + ["---", "# test card", ""]))
    items = load_items(str(root), ("template", "second"), None, Report("t"))
    ref = _items(world)
    assert sorted(it.image for it in items) == sorted(it.image for it in ref)
    by = {it.image: it for it in items}
    for r in ref:
        assert by[r.image].split == r.split and sorted(by[r.image].descriptions) == sorted(r.descriptions)
        np.testing.assert_array_equal(by[r.image].kpts_vis, r.kpts_vis)
        assert by[r.image].image_bytes == (world["images"] / r.image).read_bytes()
    # embedded images need no image folder
    data = DataConfig(dataset=str(root), images=None)
    spec = SampleSpec(64, (0.5,) * 3, (0.5,) * 3, with_heatmaps=True, train=False, seed=3)
    embedded = FocusDataset(items, data, spec)[(0, 0)]
    from_files = _dataset(world)
    ref_index = [it.image for it in from_files.items].index(items[0].image)
    torch.testing.assert_close(embedded["pixels"], from_files[(0, ref_index)]["pixels"])


def test_png_heatmaps_and_on_the_fly_render_align_with_the_image(world, tmp_path):
    hm_dir = tmp_path / "heatmaps"
    hm_dir.mkdir()
    for a in map(json.loads, world["annotations"].read_text().splitlines()):
        hm = render_heatmaps(a["people"], (a["height"], a["width"]))
        Image.fromarray(to_uint8(hm).numpy(), mode="L").save(hm_dir / (Path(a["image"]).stem + ".png"))
    png, rendered = _dataset(world, heatmaps=str(hm_dir)), _dataset(world, heatmaps="render")
    for i in range(4):
        a, b = png[(0, i)], rendered[(0, i)]
        torch.testing.assert_close(a["pixels"], b["pixels"])
        assert a["heatmap"].shape == b["heatmap"].shape == (64, 64)
        assert (a["heatmap"] - b["heatmap"]).abs().mean() < 0.03
        # the heatmap covers the drawn figure: the coloured stick pixels lie where the heatmap is high
        sat = a["pixels"].max(0).values - a["pixels"].min(0).values          # colour saturation [64, 64]
        figure = sat > 0.6
        assert figure.sum() > 20 and b["heatmap"][figure].mean() > 0.5 > b["heatmap"][~figure].mean()


def test_flip_mirrors_image_heatmap_and_swaps_left_right_words(world):
    plain, flipping = _dataset(world, train=True), _dataset(world, train=True, flip=True)
    flipped = 0
    for i in range(12):
        a, b = plain[(1, i)], flipping[(1, i)]
        if a["text"] == b["text"]:
            torch.testing.assert_close(a["pixels"], b["pixels"])
            continue
        flipped += 1
        assert b["text"] == swap_left_right(a["text"])
        torch.testing.assert_close(b["pixels"], a["pixels"].flip(-1))
        # the mirror of the heatmap, exactly (as for PNG heatmaps, and as the prepared set can store it)
        torch.testing.assert_close(b["heatmap"], a["heatmap"].flip(-1), rtol=0, atol=0)
    assert 0 < flipped < 12
    assert swap_left_right("Left hand up, right foot; LEFT. leftover") == "Right hand up, left foot; RIGHT. leftover"


def test_each_step_samples_among_the_describers(world):
    ds = _dataset(world, train=True)
    seen = {ds[(epoch, 0)]["text"] for epoch in range(12)}
    assert seen == set(ds.items[0].descriptions)
    assert ds[(5, 0)]["text"] == ds[(5, 0)]["text"]                 # deterministic per (epoch, index)
    val = _dataset(world, train=False)
    assert {val[(e, 0)]["text"] for e in range(6)} == {val.items[0].descriptions[0]}


def test_sampler_shards_the_global_batch_and_resumes():
    one = list(EpochBatchSampler(50, 8, seed=1, epoch=2))
    r0 = list(EpochBatchSampler(50, 4, 0, 2, seed=1, epoch=2))
    r1 = list(EpochBatchSampler(50, 4, 1, 2, seed=1, epoch=2))
    assert len(one) == len(r0) == len(r1) == 6                      # 50 // 8, the rest dropped
    for g, a, b in zip(one, r0, r1):
        assert g == a + b
    assert list(EpochBatchSampler(50, 8, seed=1, epoch=2, start=4)) == one[4:]
    assert list(EpochBatchSampler(50, 8, seed=1, epoch=3)) != one
    flat = [i for b in one for _, i in b]
    assert len(set(flat)) == 48 and all(e == 2 for b in one for e, _ in b)


def test_collate_pads_to_the_longest_text_in_the_batch(world):
    tok = train_wordpiece([d for it in _items(world) for d in it.descriptions], 200)
    samples = [{"pixels": torch.zeros(3, 8, 8), "image": str(i), "text": t, "skipped": []}
               for i, t in enumerate(["a red figure", "There is one person in the image, standing on the left."])]
    batch = Collate(tok, 512)(samples)
    longest = len(tok(samples[1]["text"])["input_ids"])
    assert batch["input_ids"].shape == (2, longest) < (2, 512)
    assert batch["attention_mask"].sum(1).tolist() == [len(tok("a red figure")["input_ids"]), longest]
    assert Collate(tok, 512, "max_length")(samples)["input_ids"].shape == (2, 512)


@pytest.mark.parametrize("padding", ["longest", "max_length"])
def test_texts_tokenised_up_front_give_the_batches_the_tokenizer_gives(world, padding):
    from focusclip.training.data import training_texts

    items = _items(world)
    texts = [d for it in items for d in it.descriptions]
    tok = train_wordpiece(texts, 200)
    known = training_texts(items, flip=True)
    assert len(known) == 2 * len(texts) and swap_left_right(texts[0]) in known
    ahead = Collate(tok, 12, padding, known)                  # 12 tokens: the descriptions are truncated
    assert len(ahead.encoded) == len(set(known))
    batch = [{"pixels": torch.zeros(3, 2, 2), "image": "x", "skipped": [], "text": t}
             for t in (texts[0], swap_left_right(texts[1]), "an unseen text, tokenised when it comes")]
    got, ref = ahead(batch), tok([b["text"] for b in batch], padding=padding, truncation=True, max_length=12,
                                 return_tensors="pt")
    for key in ("input_ids", "attention_mask"):
        assert torch.equal(got[key], ref[key]), key
    assert got["input_ids"].shape[1] == 12 and got["attention_mask"].sum(1).tolist()[:2] == [12, 12]


def _png_heatmaps(world, folder: Path, skip: set[str] = frozenset()) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for a in map(json.loads, world["annotations"].read_text().splitlines()):
        if a["image"] not in skip:
            hm = render_heatmaps(a["people"], (a["height"], a["width"]))
            Image.fromarray(to_uint8(hm).numpy(), mode="L").save(folder / (Path(a["image"]).stem + ".png"))


def test_missing_heatmaps_stop_the_run_up_front_or_are_rendered_when_asked(world, tmp_path):
    from focusclip.training.config import load_config
    from focusclip.training.trainer import run_train
    from tests.conftest import REPO
    from tests.training.fixtures import tiny_overrides

    def cfg(heatmaps, out, **extra):
        return load_config(REPO / "configs/tiny-focusclip.yaml", tiny_overrides(world, tmp_path / out, **{
            "data.heatmaps": heatmaps, "train.batch_size": 4, "train.max_steps": 1, "train.checkpoint_every": 0,
            **extra}))

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FocusError, match=r"16 of the 16 images have no heatmap \(e\.g\. 000000000\.png.*"
                                         r"missing_heatmaps=render"):
        run_train(cfg(empty, "a"))
    assert not (tmp_path / "a" / "checkpoints").exists()
    some = tmp_path / "some"
    _png_heatmaps(world, some, skip={"000000002.jpg", "000000013.jpg"})      # a train and a val image
    with pytest.raises(FocusError, match=r"2 of the 16 images have no heatmap \(e\.g\. 000000002\.png, 000000013\.png"):
        run_train(cfg(some, "b"))
    report = run_train(cfg(some, "c", **{"data.missing_heatmaps": "render"}))
    assert report.counts["heatmaps_rendered"] == 2 and report.counts["steps"] == 1
    assert json.loads((tmp_path / "c" / "report.json").read_text())["heatmaps_rendered_examples"] == \
        ["000000002.png", "000000013.png"]
    # the rendered ones are what the PNG would have held (resized like the image)
    from focusclip.training.data import check_heatmaps

    unchecked = _dataset(world, heatmaps=str(some), missing_heatmaps="render")
    ds = FocusDataset(check_heatmaps(unchecked.items, unchecked.cfg, Report("t")), unchecked.cfg, unchecked.spec)
    full = tmp_path / "full"
    _png_heatmaps(world, full)
    ref = _dataset(world, heatmaps=str(full))
    i = [it.image for it in ds.items].index("000000002.jpg")
    assert ds.items[i].render_heatmap and (ds[(0, i)]["heatmap"] - ref[(0, i)]["heatmap"]).abs().mean() < 0.03


def test_a_uniform_heatmap_is_the_focus_heatmaps_mean_everywhere(world):
    """data.uniform_heatmap (a focus-effect control): each sample's heatmap becomes its own mean
    value, so the weighted view dims the image as much, with no focus on the person."""
    focus, uniform = _dataset(world, heatmaps="render"), _dataset(world, heatmaps="render", uniform_heatmap=True)
    for i in range(4):
        a, b = focus[(0, i)], uniform[(0, i)]
        torch.testing.assert_close(a["pixels"], b["pixels"])
        assert a["heatmap"].std() > 0.1 and bool((b["heatmap"] == b["heatmap"][0, 0]).all())
        assert b["heatmap"][0, 0].item() == pytest.approx(a["heatmap"].mean().item(), abs=1e-6)


def test_check_heatmaps_says_which_to_draw_and_the_prepared_set_draws_exactly_those(world, tmp_path):
    """No state set behind the caller's back: `check_heatmaps` returns new (frozen) items marked to
    be drawn and leaves its input as it was; the prepared set draws exactly the marked ones and reads
    the PNG of every other. The PNGs here are flat (value 200), unlike any drawn heatmap, so the
    source of each stored frame shows."""
    import dataclasses

    from focusclip.training.config import load_config
    from focusclip.training.data import check_heatmaps, select_items
    from focusclip.training.prepare import prepare_set
    from focusclip.training.prepared import open_prepared
    from tests.conftest import REPO
    from tests.training.fixtures import tiny_overrides

    flat = tmp_path / "flat"
    flat.mkdir()
    missing = {"000000002.jpg", "000000013.jpg"}                       # a train and a val image
    for a in map(json.loads, world["annotations"].read_text().splitlines()):
        if a["image"] not in missing:
            Image.new("L", (a["width"], a["height"]), 200).save(flat / (Path(a["image"]).stem + ".png"))
    cfg = load_config(REPO / "configs/tiny-focusclip.yaml", tiny_overrides(world, tmp_path / "run", **{
        "data.heatmaps": flat, "data.missing_heatmaps": "render", "data.prepared": tmp_path / "prepared"}))

    items = _items(world)
    checked = check_heatmaps(items, cfg.data, Report("t"))
    assert not any(it.render_heatmap for it in items)                  # the input is untouched
    assert {it.image for it in checked if it.render_heatmap} == missing
    assert [it.image for it in checked] == [it.image for it in items]
    with pytest.raises(dataclasses.FrozenInstanceError):
        checked[0].render_heatmap = False

    report = Report("t")
    train, val = select_items(cfg, report, with_heatmaps=True)
    assert report.counts["heatmaps_rendered"] == 2
    everything = train + val
    plans = prepare_set(cfg, everything, report, with_heatmaps=True)
    frames = open_prepared(Path(cfg.data.prepared), plans, everything)
    spec = SampleSpec(cfg.train.image_size, (0.5,) * 3, (0.5,) * 3, with_heatmaps=True, train=False, seed=3)
    prepared, decoded = FocusDataset(everything, cfg.data, spec, frames), FocusDataset(everything, cfg.data, spec)
    drawn = set()
    for i, it in enumerate(everything):
        hm = frames.frame("heatmaps", i, it.image)[0]                  # uint8 [h, w] as stored
        if not (hm == 200).all():
            drawn.add(it.image)
            # as the decoding path draws it, to the 8-bit rounding it is stored with
            assert (prepared[(0, i)]["heatmap"] - decoded[(0, i)]["heatmap"]).abs().max() <= 0.5 / 255 + 1e-6
            assert decoded[(0, i)]["heatmap"].max() == 1.0
    assert drawn == missing
