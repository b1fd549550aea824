"""HRNet/mmpose JSON lists (the five real samples among them), split files and the hash split."""
from __future__ import annotations

import hashlib
import json

import cv2
import pytest

from focusclip.converters.mpii_json import read_mpii_json, read_val_images
from focusclip.core.errors import FocusError
from focusclip.core.report import Report
from focusclip.data.splits import assign_val, hash_split
from focusclip.pipeline.convert import fill_image_sizes


def test_real_samples_convert_to_0_based_keypoints(mpii_samples):
    raw = json.loads((mpii_samples / "test_mpii.json").read_text())
    report = Report("convert")
    records = read_mpii_json(mpii_samples / "test_mpii.json", report)
    assert [r.image for r in records] == [e["image"] for e in raw]   # one person per sample image
    for rec, e in zip(records, raw):
        [p] = rec.people
        for j in range(16):
            if e["joints_vis"][j]:
                assert p.kpts[j] == [e["joints"][j][0] - 1, e["joints"][j][1] - 1]
                assert p.kpts_vis[j] == 2
            else:
                assert p.kpts[j] == [-1.0, -1.0] and p.kpts_vis[j] == 0
        assert p.center == [e["center"][0] - 1, e["center"][1] - 1] and p.scale == e["scale"]
        assert rec.split == "train" and rec.activity_id == -1 and p.head_box is None
    labelled = sum(v > 0 for e in raw for v in e["joints_vis"])
    assert report.counts["joints_visibility_unknown"] == labelled
    sample = next(r for r in records if r.image == "005808361.jpg")
    assert sample.people[0].kpts[8] == pytest.approx([981.7591, 234.9694])  # fractional neck kept


def test_real_sample_sizes_come_from_headers(mpii_samples, tmp_path):
    records = read_mpii_json(mpii_samples / "test_mpii.json")
    report = Report("convert")
    fill_image_sizes(records, mpii_samples, report)
    for rec in records:
        h, w = cv2.imread(str(mpii_samples / rec.image)).shape[:2]     # decoded, as an independent check
        assert (rec.width, rec.height) == (w, h)
    assert report.counts["images_found"] == 5 and not report.skipped


def _entry(image, joints_vis, center=(100.0, 50.0), scale=1.5, dx=0.0):
    joints = [[10.0 * j + dx, 20.0 * j + 0.5] if v else [0.0, 0.0] for j, v in enumerate(joints_vis)]
    return {"image": image, "joints": joints, "joints_vis": joints_vis, "center": list(center), "scale": scale}


def test_people_of_one_image_are_grouped(tmp_path):
    vis_a = [1] * 8 + [0] * 8
    entries = [_entry("b.jpg", [1] * 16), _entry("a.jpg", vis_a, center=(-1, -1), scale=-1),
               _entry("b.jpg", [0] * 15 + [1], dx=3.0)]
    path = tmp_path / "train.json"
    path.write_text(json.dumps(entries))
    b, a = read_mpii_json(path)
    assert (b.image, a.image) == ("b.jpg", "a.jpg")
    assert [p.id for p in b.people] == [0, 1]
    assert b.people[1].kpts_vis == [0] * 15 + [2] and b.people[1].kpts[15] == [152.0, 299.5]
    assert b.people[0].center == [99.0, 49.0] and b.people[0].scale == 1.5
    assert a.people[0].center is None and a.people[0].scale is None         # HRNet's -1 placeholders
    assert a.people[0].kpts[9] == [-1.0, -1.0] and a.people[0].kpts[7] == [69.0, 139.5]


def test_official_test_file_name_gives_test_split(tmp_path):
    path = tmp_path / "mpii_test.json"
    path.write_text(json.dumps([{"image": "t.jpg", "center": [5, 6], "scale": 2.0}]))
    [rec] = read_mpii_json(path)
    assert rec.split == "test" and rec.people[0].num_labelled == 0 and rec.people[0].center == [4.0, 5.0]


@pytest.mark.parametrize("payload, match", [
    ({"image": "a.jpg"}, "JSON dict, not a list"),
    ([], "empty JSON list"),
    (["a.jpg"], "entry 0 .*JSON str"),
    ([_entry("a.jpg", [1] * 16), {"image": "b.jpg", "joints": [[1, 2]] * 15, "joints_vis": [1] * 16}],
     "entry 1 .*16 \\[x, y\\] pairs"),
    ([{"image": "b.jpg", "joints": [[1, 2]] * 16, "joints_vis": ["1"] * 16}], "joints_vis"),
    ([{"joints": [[1, 2]] * 16, "joints_vis": [1] * 16}], "no 'image'"),
])
def test_json_that_is_not_a_person_list_is_refused(tmp_path, payload, match):
    path = tmp_path / "x.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(FocusError, match=match):
        read_mpii_json(path)


def test_split_files_mark_val(tmp_path):
    (tmp_path / "valid.json").write_text(json.dumps([_entry("v1.jpg", [1] * 16)]))
    (tmp_path / "mpii_val.json").write_text(json.dumps([_entry("v2.jpg", [1] * 16), _entry("t.jpg", [1] * 16)]))
    assert read_val_images(tmp_path) == {"v1.jpg", "v2.jpg", "t.jpg"}

    class R:
        def __init__(self, image, split):
            self.image, self.split = image, split

    recs = [R("v1.jpg", "train"), R("v2.jpg", "train"), R("x.jpg", "train"), R("t.jpg", "test")]
    assert assign_val(recs, read_val_images(tmp_path)) == {"val_images_marked_test_in_source": 1}
    assert [r.split for r in recs] == ["val", "val", "train", "test"]
    with pytest.raises(FocusError, match="split-json folder not found"):
        read_val_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FocusError, match="neither valid.json nor mpii_val.json"):
        read_val_images(tmp_path / "empty")


def test_hash_split_is_sha1_of_the_name_and_about_15_percent():
    names = [f"{i:09d}.jpg" for i in range(4000)]
    ours = [hash_split(n) for n in names]
    for n, s in zip(names[:200], ours):
        h = int.from_bytes(hashlib.sha1(f"focusclip-val-v1:{n}".encode()).digest()[:8], "big")
        assert s == ("val" if h / 2**64 < 0.15 else "train")
    assert 0.13 < ours.count("val") / len(names) < 0.17
