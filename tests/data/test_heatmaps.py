"""The tensor heatmap renderer against a literal, full-grid, part-by-part NumPy reading of docs/design.md §3.3."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from focusclip.core.devices import resolve_device
from focusclip.core.errors import FocusError
from focusclip.data.heatmaps import (bad_joints, people_arrays, render_heatmaps, render_heatmaps_batch, to_uint8,
                                     usable_joints)
from focusclip.data.records import Person

torch.set_num_threads(1)

# docs/design.md §3.3, copied from the text (not from data.skeleton) so a wrong table there fails here.
PARTS = [[7, 8, 9, 12, 13], [6, 7, 12, 13, 2, 3], [13, 14, 7], [12, 11, 7], [14, 15, 13], [11, 10, 12],
         [3, 4, 6], [2, 1, 6], [4, 5, 3], [1, 0, 2]]
TOL = 1 / 255


def literal_heatmap(people, height, width, mode="parts", min_sigma=1.0):
    """people: list of {"kpts": 16×[x, y], "kpts_vis": 16} → float64 [H, W]; one full-grid exp per part."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    total = np.zeros((height, width))
    for person in people:
        kpts, vis = person["kpts"], person["kpts_vis"]
        for part in (PARTS if mode == "parts" else [list(range(16))]):
            pts = [(int(kpts[j][0]), int(kpts[j][1])) for j in part
                   if vis[j] > 0 and all(math.isfinite(c) and c >= 0 for c in kpts[j])]
            if len(pts) < 2:
                continue
            px, py = [p[0] for p in pts], [p[1] for p in pts]
            cx, cy = (min(px) + max(px)) // 2, (min(py) + max(py)) // 2
            sx, sy = max((max(px) - min(px)) // 2, min_sigma), max((max(py) - min(py)) // 2, min_sigma)
            total += np.exp(-((xs - cx) ** 2 / (2 * sx ** 2) + (ys - cy) ** 2 / (2 * sy ** 2)))
    return np.clip(total, 0, 1)


def mpii_people(folder):
    """The samples' HRNet/mmpose JSON (one row per person, 1-based) → {image: [person dict, …]}."""
    out: dict[str, list] = {}
    for row in json.loads((folder / "test_mpii.json").read_text()):
        kpts = [[x - 1.0, y - 1.0] for x, y in row["joints"]]
        vis = [int(v) for v in row["joints_vis"]]
        out.setdefault(row["image"], []).append({"kpts": kpts, "kpts_vis": vis})
    return out


def check(people, h, w, mode="parts", min_sigma=1.0):
    got = render_heatmaps(people, (h, w), mode, min_sigma=min_sigma)
    want = literal_heatmap(people, h, w, mode, min_sigma)
    assert got.shape == (h, w) and got.dtype == torch.float32
    assert torch.isfinite(got).all() and got.min() >= 0 and got.max() <= 1
    assert np.abs(got.numpy() - want).max() <= TOL
    return got.numpy(), want


@pytest.mark.parametrize("mode", ["parts", "person"])
def test_real_mpii_samples_match_literal(mpii_samples, mode):
    people = mpii_people(mpii_samples)
    assert len(people) == 5
    for image, persons in people.items():
        w, h = Image.open(mpii_samples / image).size
        got, want = check(persons, h, w, mode)
        assert want.max() == 1.0 and got.max() == 1.0  # a labelled person is always covered


def test_real_samples_batched_equals_single(mpii_samples):
    people = [p for name, p in sorted(mpii_people(mpii_samples).items())]
    batch = render_heatmaps_batch(people, (720, 1280))
    assert batch.shape == (5, 720, 1280)
    for b, persons in enumerate(people):
        assert torch.equal(batch[b], render_heatmaps(persons, (720, 1280)))


def random_person(rng, w, h, spread=1.2):
    kpts = rng.uniform(-0.1 * w, spread * w, (16, 2)) * [1, h / w]
    vis = rng.integers(0, 3, 16)
    return {"kpts": kpts.tolist(), "kpts_vis": vis.tolist()}


@pytest.mark.parametrize("seed", range(12))
def test_random_people_match_literal(seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(1, 70)), int(rng.integers(1, 90))
    people = [random_person(rng, w, h) for _ in range(int(rng.integers(0, 5)))]
    for mode in ("parts", "person"):
        check(people, h, w, mode, min_sigma=float(rng.choice([1.0, 0.5, 2.5])))


def person_with(joints):
    """A person dict with only `joints` ({id: (x, y)}) labelled."""
    kpts, vis = [[-1.0, -1.0] for _ in range(16)], [0] * 16
    for j, (x, y) in joints.items():
        kpts[j], vis[j] = [x, y], 2
    return {"kpts": kpts, "kpts_vis": vis}


EDGE_CASES = {
    "border": [person_with({j: (0.0 if j % 2 else 47.9, 0.0 if j % 3 else 35.99) for j in range(16)})],
    "outside": [person_with({j: (30.0 + 20 * j, 10.0 + 7 * j) for j in range(16)})],
    "single joint": [person_with({14: (10.0, 10.0)})],
    "collinear": [person_with({j: (5.0 + 2 * j, 20.0) for j in range(16)})],
    "zero extent": [person_with({12: (20.4, 20.6), 11: (20.9, 20.1), 10: (20.0, 20.0)})],
    "no people": [],
    "nan and negative": [person_with({13: (float("nan"), 5.0), 14: (-3.0, 9.0), 15: (9.0, 12.0),
                                      0: (float("inf"), 1.0), 1: (12.0, 30.0), 2: (14.0, 22.0)})],
    "many people": [person_with({j: (3.0 * j + p, 2.0 * j) for j in range(16)}) for p in range(7)],
}


@pytest.mark.parametrize("case", list(EDGE_CASES))
@pytest.mark.parametrize("mode", ["parts", "person"])
def test_edge_cases_match_literal(case, mode):
    got, _ = check(EDGE_CASES[case], 36, 48, mode)
    if case in ("single joint", "no people"):
        assert not got.any()


def test_one_part_by_hand():
    # Only l_elbow (14) and l_wrist (15): just the l-lower-arm part [14, 15, 13] has two joints.
    # Truncated (10, 20), (20, 30) → centre (15, 25), sigma (5, 5).
    got = render_heatmaps([person_with({14: (10.7, 20.2), 15: (20.9, 30.99)})], (40, 40)).numpy()
    assert got[25, 15] == pytest.approx(1.0)
    assert got[25, 20] == pytest.approx(math.exp(-0.5), rel=1e-6)
    assert got[30, 10] == pytest.approx(math.exp(-1.0), rel=1e-6)
    assert got[0, 39] == pytest.approx(math.exp(-(24 ** 2 + 25 ** 2) / 50), abs=1e-12)


def test_zero_extent_uses_min_sigma():
    people = [person_with({10: (8.0, 8.0), 11: (8.5, 8.9)})]  # r_lower_arm [11, 10, 12]: one point
    for min_sigma in (1.0, 3.0):
        got = render_heatmaps(people, (17, 17), min_sigma=min_sigma).numpy()
        assert got[8, 8] == 1.0
        assert got[8, 11] == pytest.approx(math.exp(-9 / (2 * min_sigma ** 2)), rel=1e-5)


def test_inputs_agree_across_forms():
    rng = np.random.default_rng(7)
    raw = [random_person(rng, 50, 40) for _ in range(3)]
    persons = [Person(id=i, kpts=p["kpts"], kpts_vis=p["kpts_vis"]) for i, p in enumerate(raw)]
    dicts = raw
    kpts, vis = people_arrays(persons)
    assert kpts.shape == (3, 16, 2) and kpts.dtype == np.float32 and vis.shape == (3, 16)
    want = render_heatmaps(persons, (40, 50))
    for form in (dicts, tuple(persons), (kpts, vis), (torch.from_numpy(kpts), torch.from_numpy(vis))):
        assert torch.equal(render_heatmaps(form, (40, 50)), want)
    out = torch.full((2, 40, 50), 7.0)
    batch = render_heatmaps_batch([persons, (torch.from_numpy(kpts[:1]), torch.from_numpy(vis[:1]))],
                                  (40, 50), out=out)
    assert batch.data_ptr() == out.data_ptr() and torch.equal(out[0], want)
    assert torch.equal(out[1], render_heatmaps(persons[:1], (40, 50)))


def test_malformed_joints_become_bad_not_crashes():
    people = [{"kpts": [None, [1.0], [2.0, "x"]] + [[3.0, 4.0]] * 13, "kpts_vis": [2, 1, 2, None] + [2] * 12},
              {"kpts_vis": [1] * 16}, {}]
    kpts, vis = people_arrays(people)
    assert bad_joints(kpts, vis)[0, :3].all() and not bad_joints(kpts, vis)[0, 3:].any()
    assert vis[0, 3] == 0 and bad_joints(kpts, vis)[1].all() and not vis[2].any()
    assert usable_joints(kpts, vis).sum() == 12
    got = render_heatmaps(people, (10, 10))
    assert torch.isfinite(got).all()
    assert torch.equal(to_uint8(got), to_uint8(render_heatmaps((kpts[:1], vis[:1]), (10, 10))))


def test_uint8_quantization_rounds():
    hm = torch.tensor([[0.0, 0.49 / 255, 0.51 / 255, 1.0, 127.6 / 255]])
    assert to_uint8(hm).tolist() == [[0, 0, 1, 255, 128]]


def test_bad_arguments_are_user_errors():
    with pytest.raises(FocusError, match="mode"):
        render_heatmaps([], (4, 4), mode="box")
    with pytest.raises(FocusError, match="min_sigma"):
        render_heatmaps([], (4, 4), min_sigma=0)
    with pytest.raises(FocusError, match="size"):
        render_heatmaps([], (0, 4))
    with pytest.raises(FocusError, match="unknown device"):
        resolve_device("tpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(FocusError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_agrees_with_cpu():
    rng = np.random.default_rng(3)
    batch = [[random_person(rng, 1280, 720) for _ in range(int(rng.integers(0, 6)))] for _ in range(9)]
    batch += [EDGE_CASES[c] for c in EDGE_CASES]
    for mode in ("parts", "person"):
        cpu = render_heatmaps_batch(batch, (720, 1280), mode, "cpu")
        gpu = render_heatmaps_batch(batch, (720, 1280), mode, "cuda")
        assert gpu.device.type == "cuda" and torch.isfinite(gpu).all()
        assert (gpu.cpu() - cpu).abs().max() <= TOL
        assert (to_uint8(gpu).cpu().int() - to_uint8(cpu).int()).abs().max() <= 1
    k, v = people_arrays(batch[0])
    on_gpu = render_heatmaps((torch.from_numpy(k).cuda(), torch.from_numpy(v).cuda()), (720, 1280),
                             device="cuda")
    assert (on_gpu.cpu() - render_heatmaps((k, v), (720, 1280))).abs().max() <= TOL
