"""benchmarks/focus_effect.py: its paired bootstrap and its summary measure what the README reports."""
from __future__ import annotations

import json
import math
import statistics

import numpy as np
import pytest

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def fe():
    return load_benchmark("focus_effect")


def _half(ci: list[float]) -> float:
    return (ci[1] - ci[0]) / 2


def test_bootstrap_matches_the_binomial_interval(fe):
    rng = np.random.default_rng(0)
    n, p = 1000, 0.3
    hits = (rng.random(n) < p).astype(int)
    lo, hi = fe.seed_image_bootstrap(np.stack([hits, hits]))     # two identical seeds: only the images vary
    m = hits.mean()
    half = 1.96 * math.sqrt(m * (1 - m) / n)
    assert lo < m < hi
    assert abs((hi - lo) / 2 - half) < 0.2 * half, ((hi - lo) / 2, half)


def test_the_bootstrap_is_paired_a_shared_image_effect_cancels(fe):
    """Both arms get the same hard and easy images; only 3% of the images differ. An unpaired interval
    would be as wide as either arm's own (~±2.8 points at n = 1,000); the paired one must be far narrower."""
    rng = np.random.default_rng(1)
    n, seeds = 1000, 4
    b = np.tile((rng.random(n) < 0.3).astype(int), (seeds, 1))
    a = b.copy()
    flip = rng.choice(np.flatnonzero(b[0] == 0), 30, replace=False)
    a[:, flip] = 1
    lo, hi = fe.paired_bootstrap(a, b)
    assert lo < 0.03 < hi
    own = _half(fe.seed_image_bootstrap(b))
    assert _half([lo, hi]) < 0.4 * own, (_half([lo, hi]), own)
    # the interval of the mean difference: 30 of 1,000 images, binomial-like, ±1.96·sqrt(p(1-p)/n)
    assert _half([lo, hi]) == pytest.approx(1.96 * math.sqrt(0.03 * 0.97 / n), rel=0.25)


def test_the_bootstrap_carries_the_spread_between_seeds(fe):
    """With no image-level noise the interval is that of a mean over resampled seeds:
    ±1.96 · sd(seed offsets) / sqrt(S) (the bootstrap's sd uses 1/S, hence the correction)."""
    rng = np.random.default_rng(2)
    seeds, n = 16, 200
    offsets = rng.normal(-0.05, 0.05, seeds)
    d = np.repeat(offsets[:, None], n, axis=1)
    lo, hi = fe.seed_image_bootstrap(d)
    expected = 1.96 * np.std(offsets) / math.sqrt(seeds)
    assert lo < offsets.mean() < hi
    assert _half([lo, hi]) == pytest.approx(expected, rel=0.15)
    # four times the seeds at the same spread: half the width
    more = rng.normal(-0.05, 0.05, 4 * seeds)
    wide, narrow = _half([lo, hi]) / np.std(offsets), _half(fe.seed_image_bootstrap(np.repeat(more[:, None], n, 1))) / np.std(more)
    assert narrow == pytest.approx(wide / 2, rel=0.2)


def test_split_by_part_moves_each_part_between_the_models(fe):
    """Hand-worked: a wins both images only through its per-class common part (b's own part with a's
    common part is right too), c only through its own part (its common part is b's)."""
    labels = [[0], [1]]
    a = np.array([[0.9, 0.1, 0.45], [0.1, 0.7, 0.45]])    # column means 0.5 0.4 0.45: own ±0.4, ±0.3
    b = np.array([[0.2, 0.0, 0.9], [0.0, 0.2, 0.9]])      # column means 0.1 0.1 0.9: class 2 wins both
    split = fe.split_by_part(a, b, labels)
    np.testing.assert_array_equal(split["own"], [0.0, 0.0])
    np.testing.assert_array_equal(split["common"], [1.0, 1.0])
    back = fe.split_by_part(b, a, labels)
    np.testing.assert_array_equal(back["common"], [-1.0, -1.0])
    c = np.array([[0.9, -0.9, 0.0], [-0.9, 0.9, 0.0]]) + b.mean(0)    # b's common part, a strong own part
    split = fe.split_by_part(c, b, labels)
    np.testing.assert_array_equal(split["own"], [1.0, 1.0])
    np.testing.assert_array_equal(split["common"], [0.0, 0.0])
    rng = np.random.default_rng(5)                        # the two parts always add up to the difference
    x, y = rng.random((50, 6)), rng.random((50, 6))
    lab = [[int(v)] for v in rng.integers(0, 6, 50)]
    split = fe.split_by_part(x, y, lab)
    hx = np.array([int(p in lb) for p, lb in zip(x.argmax(1), lab)])
    hy = np.array([int(p in lb) for p, lb in zip(y.argmax(1), lab)])
    np.testing.assert_allclose(split["own"] + split["common"], hx - hy)


def test_summarise_and_markdown_report_the_paired_difference(fe, tmp_path):
    rng = np.random.default_rng(3)
    seeds, n = [0, 1, 2], 300
    drawn = 7

    def run(p: float) -> dict:
        top1 = (rng.random(n) < p).astype(int).tolist()
        return {"top1": top1, "topk": [max(h, int(rng.random() < 0.2)) for h in top1],
                "top1_drawn": (rng.random(n) < p + 0.1).astype(int).tolist(), "absent_top1": int(rng.integers(0, n)),
                "top1_centred": (rng.random(n) < p + 0.05).astype(int).tolist(),
                "geometry": {"cos_true": p, "absent_over_true": p / 10, "absent_prompt_spread": rng.random(),
                             "centroid_absent_lead": p / 5, "absent_above_drawn": 3, "absent_share_centred": p}}

    hits = {"clip": {s: run(0.25) for s in seeds}, "focusclip": {s: run(0.15) for s in seeds}}
    for s in seeds:
        hits["focusclip"][s]["split"] = {"clip": {"own": rng.choice([-1.0, -0.5, 0.0, 0.5], n).tolist(),
                                                  "common": rng.choice([-0.5, 0.0, 0.5, 1.0], n).tolist()}}
    summary = fe.summarise(hits, seeds)
    f, c = summary["focusclip"], summary["clip"]
    per_seed = [statistics.fmean(hits["focusclip"][s]["top1"]) - statistics.fmean(hits["clip"][s]["top1"]) for s in seeds]
    assert f["delta_top1"] == pytest.approx(statistics.fmean(per_seed))
    assert f["delta_top1_ci95"][0] < f["delta_top1"] < f["delta_top1_ci95"][1]
    assert c["top1_std"] == pytest.approx(statistics.stdev(statistics.fmean(hits["clip"][s]["top1"]) for s in seeds))
    assert f["absent_top1_share"] == pytest.approx(statistics.fmean(hits["focusclip"][s]["absent_top1"] / n for s in seeds))
    assert "delta_top1" not in c
    shares = [hits["clip"][s]["absent_top1"] / n for s in seeds]
    t1 = [statistics.fmean(hits["clip"][s]["top1"]) for s in seeds]
    assert c["top1_r2_absent"] == pytest.approx(np.corrcoef(shares, t1)[0, 1] ** 2)
    meta = {"drawn": drawn, "alpha": {"focusclip": [0.5, 0.6]}, "n": n, "classes": 40, "blind_top1": 0.143,
            "blind_topk": 0.43, "seeds": seeds, "steps": 800, "n_train": 6000, "clutter": 1.0, "sets": [], "minutes": 1,
            "runs_trained": 4, "runs_reused": 2}
    md = fe.markdown(summary, meta)
    lo, hi = f["delta_top1_ci95"]
    assert f"{100 * f['delta_top1']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] (±{50 * (hi - lo):.1f})" in md
    assert "| focusclip |" in md and "0.55 (0.50–0.60)" in md
    assert "1 min (4 runs trained now, 2 reused from earlier invocations)" in md
    curve = {arm: {s: {"val_image_text": [(100, 4.0), (200, 3.8)], "alpha": [(100, 0.5)] if arm != "clip" else []}
                   for s in seeds} for arm in hits}
    fe.plot(summary, curve, tmp_path / "fe.png")
    assert (tmp_path / "fe.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"(r²): clip {c['top1_r2_absent']:.2f}, focusclip {f['top1_r2_absent']:.2f}." in md
    spread = statistics.fmean(hits["clip"][s]["geometry"]["absent_prompt_spread"] for s in seeds)
    assert f"clip 0.25 / +0.025 / {spread:.3f}; focusclip 0.15 / +0.015 /" in md
    centred = {arm: statistics.fmean(statistics.fmean(hits[arm][s]["top1_centred"]) for s in seeds) for arm in hits}
    d = centred["focusclip"] - centred["clip"]
    assert f["delta_top1_centred"] == pytest.approx(d)
    lo, hi = f["delta_top1_centred_ci95"]
    assert lo < d < hi
    parts = {p: statistics.fmean(v for s in seeds for v in hits["focusclip"][s]["split"]["clip"][p]) for p in ("own", "common")}
    got = f["split"]["clip"]
    assert got["own"] == pytest.approx(parts["own"]) and got["common"] == pytest.approx(parts["common"])
    (olo, ohi), (clo, chi) = got["own_ci95"], got["common_ci95"]
    assert olo < parts["own"] < ohi and clo < parts["common"] < chi
    assert "split" not in c
    assert (f"own + common: focusclip − clip {100 * parts['own']:+.1f} [{100 * olo:+.1f}, {100 * ohi:+.1f}] + "
            f"{100 * parts['common']:+.1f} [{100 * clo:+.1f}, {100 * chi:+.1f}].") in md
    assert (f"clip {100 * centred['clip']:.1f}, absent {100 * c['absent_top1_share']:.0f}% → 25%, lead +0.050, 3.0 absent above every drawn; focusclip {100 * centred['focusclip']:.1f}, "
            f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] vs CLIP, absent {100 * f['absent_top1_share']:.0f}% → 15%, lead +0.030, 3.0 absent above every drawn.") in md


def test_geometry_measures_where_images_sit_among_the_prompts(fe):
    """Three classes in 2-D, class 2 absent: hand-computed cosines."""
    prompts = np.array([[1.0, 0.0], [0.0, 1.0], [math.sqrt(0.5), math.sqrt(0.5)]])
    images = np.array([[1.0, 0.0], [0.6, 0.8]])            # unit rows, labels 0 and 1
    g = fe.geometry(images @ prompts.T, [0, 1], [0, 1], prompts)
    assert g["cos_true"] == pytest.approx((1.0 + 0.8) / 2)
    assert g["absent_over_true"] == pytest.approx(((math.sqrt(0.5) - 1.0) + (1.4 * math.sqrt(0.5) - 0.8)) / 2)
    assert math.isnan(g["absent_prompt_spread"])           # one absent class: no pairs
    two_absent = np.vstack([prompts, [[0.0, -1.0]]])
    g = fe.geometry(images @ two_absent.T, [0, 1], [0, 1], two_absent)
    assert g["absent_prompt_spread"] == pytest.approx(1 - (-math.sqrt(0.5)))


def test_geometry_splits_absent_answers_into_the_common_part_and_each_images_own(fe):
    """Scores built as a per-class bias every image shares plus each image's own part: the absent class
    wins every image through its bias, and none once the column means are subtracted."""
    own = np.array([[0.3, 0.0, 0.1], [0.0, 0.3, 0.1], [0.3, 0.0, 0.1], [0.0, 0.3, 0.1]])   # labels 0 1 0 1
    bias = np.array([0.1, 0.1, 0.5])                       # class 2 (absent) sits nearest the image mean
    scores = own - own.mean(0) + bias                       # column means are exactly `bias`
    g = fe.geometry(scores, [0, 1, 0, 1], [0, 1], np.eye(3))
    assert (scores.argmax(1) == 2).all() and g["absent_share_centred"] == 0.0
    assert g["centroid_absent_lead"] == pytest.approx(0.5 - 0.1) and g["absent_above_drawn"] == 1
    assert g["cos_true"] == pytest.approx(np.mean([scores[0, 0], scores[1, 1], scores[2, 0], scores[3, 1]]))
    g = fe.geometry(own - own.mean(0) + [0.1, 0.2, 0.15], [0, 1, 0, 1], [0, 1], np.eye(3))
    assert g["absent_above_drawn"] == 0 and g["centroid_absent_lead"] == pytest.approx(0.0)


def test_the_spread_note_names_what_drives_top1_across_seeds(fe):
    """Seeds whose answers go to absent classes lose top-1 one for one: r² near 1; no relation: near 0."""
    share = [0.2, 0.4, 0.6, 0.3, 0.5]
    assert fe._r2(share, [0.3 - 0.5 * x for x in share]) == pytest.approx(1.0)
    assert fe._r2(share, [0.2, 0.2, 0.2, 0.2, 0.2]) is None
    assert fe._r2([0.2, 0.4], [0.1, 0.3]) is None
    rng = np.random.default_rng(4)
    assert fe._r2(list(rng.random(200)), list(rng.random(200))) < 0.05


def test_each_runs_final_temperature_per_pair_reaches_the_table(fe, tmp_path):
    """curves() reads the last training row's τ (each pair's with a per-pair τ, one otherwise), and the
    table gives their means over seeds beside alpha, after the headline top-1 among the drawn classes."""
    from focusclip.pipeline.demo.layout import Layout

    lay = Layout(tmp_path)
    rows = {"pp": [{"step": 10, "loss": 3.0, "alpha": 0.5, "temperature": 0.06, "temperature_masked_image": 0.05,
                    "temperature_masked_text": 0.055},
                   {"step": 20, "loss": 2.0, "alpha": 0.52, "temperature": 0.04, "temperature_masked_image": 0.01,
                    "temperature_masked_text": 0.03},
                   {"step": 20, "epoch": 1, "val_loss": 2.5, "val_loss_image_text": 2.4}],
            "shared": [{"step": 20, "loss": 2.0, "alpha": None, "temperature": 0.02}],
            "no-mi": [{"step": 20, "loss": 2.0, "alpha": 0.4, "temperature": 0.05, "temperature_masked_text": 0.07}]}
    got = {}
    for run, rs in rows.items():
        (lay.train / run).mkdir(parents=True)
        (lay.train / run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rs))
        got[run] = fe.curves(run, lay)
    assert got["pp"]["temperature"] == {"image_text": 0.04, "masked_image": 0.01, "masked_text": 0.03}
    assert got["pp"]["val_image_text"] == [(20, 2.4)] and got["pp"]["alpha"] == [(10, 0.5), (20, 0.52)]
    assert got["shared"]["temperature"] == {"image_text": 0.02}
    second = {"image_text": 0.02, "masked_image": 0.03, "masked_text": 0.05}
    assert fe.final_taus([got["pp"]["temperature"], second]) == "0.030 / 0.020 / 0.040"
    assert fe.final_taus([got["shared"]["temperature"], {"image_text": 0.04}]) == "0.030"
    assert fe.final_taus([got["no-mi"]["temperature"]]) == "0.050 / — / 0.070"
    assert fe.final_taus([]) == "—"
    summary = {arm: {"top1_mean": 0.2, "top1_std": 0.01, "topk_mean": 0.3, "topk_std": 0.02, "top1_drawn_mean": 0.4,
                     "top1_drawn_std": 0.03, "absent_top1_share": 0.5} for arm in ("clip", "focusclip")}
    meta = {"drawn": 7, "alpha": {"focusclip": [0.52]}, "n": 100, "classes": 40, "blind_top1": 0.143, "blind_topk": 0.43,
            "seeds": [0, 1], "steps": 20, "n_train": 300, "clutter": 1.0, "sets": [], "minutes": 2, "runs_trained": 2,
            "runs_reused": 0, "bystanders": 1, "tau": "per-pair",
            "temperature": {"clip": [{"image_text": 0.05}], "focusclip": [got["pp"]["temperature"], second]}}
    md = fe.markdown(summary, meta)
    assert "| arm | **top-1 of the 7 drawn** | its − CLIP [paired 95% CI] | top-1 of 40 |" in md
    assert "| focusclip | 40.0 ± 3.0 | — | 20.0 ± 1.0 | — | 30.0 ± 2.0 | 50% | 0.52 (0.52–0.52) | 0.030 / 0.020 / 0.040 |" in md
    assert "| clip | 40.0 ± 3.0 |" in md and "| — | 0.050 |" in md
    assert "1 bystanders per image, temperature per-pair" in md


def test_the_world_and_the_temperature_choose_the_folders(fe):
    args = fe.parse_args(["--bystanders", "2", "--tau", "per-pair"])
    assert args.out.name == "focus_effect-b2"
    assert fe.run_name("focusclip", 3, args) == f"focusclip-st800-v{fe.RUNS_VERSION}-tpp-s3"
    plain = fe.parse_args([])
    assert plain.out.name == "focus_effect" and fe.run_name("clip", 0, plain) == f"clip-st800-v{fe.RUNS_VERSION}-s0"
    assert fe.TAUS["per-pair"][0] == ("loss.temperature_per_pair=true",)


def test_bystander_shares_split_the_answers_between_the_subject_and_the_bystander(fe):
    """Counted by hand: over two seeds, images 0–2 have a bystander doing a drawn activity (3 per seed,
    6 in all), image 3 one doing an undrawn one."""
    by_seed = {0: {"top1_drawn": [1, 0, 0, 1], "bystander_top1_drawn": [0, 1, 0, None],
                   "subject_over_bystander": [1, 0, 1, None]},
               1: {"top1_drawn": [0, 0, 1, 0], "bystander_top1_drawn": [1, 1, 0, None],
                   "subject_over_bystander": [0, 0, 1, None]}}
    got = fe.bystander_shares(by_seed, [0, 1])
    assert got["images_drawn_bystander"] == 3 and got["images_other"] == 1
    assert got["subject_top1"] == pytest.approx(2 / 6)       # seed 0 image 0, seed 1 image 2
    assert got["bystander_top1"] == pytest.approx(3 / 6)
    assert got["subject_over_bystander"] == pytest.approx(3 / 6)
    assert got["subject_top1_other"] == pytest.approx(1 / 2)
    summary = {"clip": {"bystander": got}}
    note = fe._bystander_note(summary)
    assert "clip 33.3 / 50.0 / 50.0 / 50.0" in note and "3 test images whose bystander" in note
    assert fe._bystander_note({"clip": {}}) == ""


def test_init_from_names_each_seeds_clip_and_keeps_its_runs_apart(fe, tmp_path):
    """--init-from reads the earlier benchmark's focus_effect.json for each seed's clip run; run folders
    carry which model they continue; a seed it does not hold, or no summary at all, stops the benchmark."""
    base = tmp_path / "b0"
    for seed in (0, 1):
        (base / "train" / f"clip-st800-v2-s{seed}" / "checkpoints" / "last").mkdir(parents=True)
    (base / "focus_effect.json").write_text(json.dumps({"runs": {"clip/0": "clip-st800-v2-s0", "clip/1": "clip-st800-v2-s1",
                                                                 "focusclip/0": "focusclip-st800-v2-s0"}}))
    args = fe.parse_args(["--bystanders", "1", "--init-from", str(base), "--steps", "400"])
    assert fe.init_checkpoint(args, 1) == (base / "train" / "clip-st800-v2-s1" / "checkpoints" / "last").resolve()
    names = {fe.run_name(arm, s, args) for arm in ("clip", "focusclip", "base") for s in (0, 1)}
    assert len(names) == 6 and all("-i" in n for n in names)
    assert fe.run_name("clip", 0, args) != fe.run_name("clip", 1, args).replace("-s1", "-s0")   # another base model
    assert fe.run_name("base", 0, args).startswith("base-i")
    with pytest.raises(SystemExit, match="no clip run of seed 2"):
        fe.init_checkpoint(args, 2)
    with pytest.raises(SystemExit, match="no focus_effect.json"):
        fe.init_checkpoint(fe.parse_args(["--init-from", str(tmp_path)]), 0)
    with pytest.raises(SystemExit):
        fe.parse_args(["--arms", "base", "clip"])        # base is the --init-from model


def test_the_base_world_table_reports_the_paired_difference(fe):
    summary = {"base": {"top1_drawn_mean": 0.336, "top1_drawn_std": 0.02, "top1_mean": 0.2, "top1_std": 0.01,
                        "delta_top1_drawn": 0.004, "delta_top1_drawn_ci95": [-0.019, 0.027],
                        "delta_top1": -0.033, "delta_top1_ci95": [-0.052, -0.015]},
               "clip": {"top1_drawn_mean": 0.332, "top1_drawn_std": 0.0, "top1_mean": 0.242, "top1_std": 0.0}}
    md = fe.base_world_table(summary, {"drawn": 7, "init_from": "runs/focus_effect-b0"})
    assert "| base | 33.6 ± 2.0 | +0.4 [-1.9, +2.7] | 20.0 ± 1.0 | -3.3 [-5.2, -1.5] |" in md
    assert "| clip | 33.2 ± 0.0 | — | 24.2 ± 0.0 | — |" in md


def test_bystander_classes_reads_each_images_first_bystander_by_file_name(fe, tmp_path):
    from types import SimpleNamespace

    classes = ["applauding", "climbing", "running"]
    listed = {"running_031.jpg": [{"action": "climbing", "family": "climbing", "height_ratio": 0.8}],
              "climbing_031.jpg": [{"action": None, "family": "standing", "height_ratio": 0.7}],
              "applauding_031.jpg": []}
    test = fe.TestSet("", tmp_path, listed)
    samples = [SimpleNamespace(key=f"/data/stanford40/JPEGImages/{n}") for n in
               ("running_031.jpg", "climbing_031.jpg", "applauding_031.jpg", "unknown.jpg")]
    assert fe.bystander_classes(samples, test, classes) == [1, None, None, None]
