"""`focus-data convert` through the installed console script: outputs, reports, reruns, bad input."""
from __future__ import annotations

import json
import os
import subprocess

import cv2
import numpy as np
import pytest
import scipy.io

from tests.conftest import console_script
from tests.converters.mat_fixtures import expected_emotic, expected_mpii, write_emotic, write_mpii


def focus_data(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([console_script("focus-data"), *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_mpii_mat_with_images_then_rerun_then_force(tmp_path):
    src = tmp_path / "mpii_human_pose_v1_u12_1.mat"
    write_mpii(src)
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "015601864.jpg"), np.zeros((48, 64, 3), np.uint8))
    out = tmp_path / "out" / "annotations.jsonl"
    r = focus_data("convert", "mpii", src, "-o", out, "--images", images)
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and "6 images" in r.stdout
    assert "warning: 5 annotated images are missing" in r.stderr
    assert "sizes unknown" not in r.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    expected = expected_mpii()
    expected[1].update(width=64, height=48)
    assert len(rows) == len(expected) == 6
    for row, exp in zip(rows, expected):
        assert row["split"] in (("test",) if exp["split"] == "test" else ("train", "val"))
        assert {**row, "split": exp["split"]} == exp
    report = json.loads((tmp_path / "out" / "annotations.report.json").read_text())
    c = report["counts"]
    assert (c["images"], c["people"], c["split_test"], c["split_train"] + c["split_val"]) == (6, 8, 1, 5)
    assert c["labelled_joints"] == 16 + 1 + 2 + 2 and c["joints_visibility_unknown"] == 3
    assert report["skipped"]["image file missing (record kept, size unknown)"] == 5
    assert report["options"]["images"] == str(images)

    again = focus_data("convert", "mpii", src, "-o", out, "--images", images)
    assert again.returncode == 0 and again.stdout.startswith("kept")
    forced = focus_data("convert", "mpii", src, "-o", out, "--images", images, "--force")
    assert forced.returncode == 0 and forced.stdout.startswith("wrote")
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows


def test_mpii_json_with_split_files(tmp_path):
    entries = [{"image": f"{i:09d}.jpg", "joints": [[j + 1.0, j + 2.0] for j in range(16)],
                "joints_vis": [1] * 16, "center": [50.0, 60.0], "scale": 1.0} for i in range(4)]
    (tmp_path / "train.json").write_text(json.dumps(entries))
    (tmp_path / "annot").mkdir()
    (tmp_path / "annot" / "valid.json").write_text(json.dumps(entries[1:3]))
    out = tmp_path / "a.jsonl"
    r = focus_data("convert", "mpii", tmp_path / "train.json", "-o", out, "--split-json-dir", tmp_path / "annot")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"wrote {out}: 4 images (train 2, val 2, test 0), 4 people, 64 labelled joints")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    # One record per image, in file order; HRNet's 1-based pixels become 0-based (x − 1, y − 1) and its
    # joints_vis means "labelled", written as visibility 2; the images listed in valid.json are val.
    person = {"id": 0, "center": [49.0, 59.0], "scale": 1.0, "head_box": None,
              "kpts": [[float(j), j + 1.0] for j in range(16)], "kpts_vis": [2] * 16}
    assert rows == [{"image": f"{i:09d}.jpg", "split": split, "width": None, "height": None, "video_id": None,
                     "video_frame": None, "activity_id": -1, "category": "", "activity": "",
                     "single_person": [], "people": [person]}
                    for i, split in enumerate(["train", "val", "val", "train"])]
    report = json.loads(out.with_suffix(".report.json").read_text())
    assert report["val_from"] == "split files" and report["source_format"] == "hrnet-json"
    assert report["counts"] == {"images": 4, "people": 4, "split_train": 2, "split_val": 2, "split_test": 0,
                                "labelled_joints": 64, "joints_visibility_unknown": 64}
    assert report["skipped"] == {} and report["outputs"] == [str(out)]
    # No --images: the null sizes are said once, on stderr and in the report, with what they cost.
    warning = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "width and height are null in every record" in warning[0], r.stderr
    assert "heatmaps will read each image's header" in warning[0] and "left/centre/right" in warning[0]
    assert warning[0].endswith("(pass --images DIR to record them)")
    assert report["image_sizes"].startswith("image sizes unknown (no --images)")


def test_emotic(tmp_path):
    src = tmp_path / "Annotations.mat"
    write_emotic(src)
    r = focus_data("convert", "emotic", src, "-o", tmp_path / "emotic")
    assert r.returncode == 0, r.stderr
    assert "train 3 people, val 1 people, test 1 people" in r.stdout
    for split, rows in expected_emotic().items():
        got = [json.loads(line) for line in (tmp_path / "emotic" / f"{split}.jsonl").read_text().splitlines()]
        assert got == rows
    assert json.loads((tmp_path / "emotic" / "report.json").read_text())["counts"]["body_boxes_clamped"] == 2


def _bad_inputs(tmp_path):
    good = tmp_path / "good.mat"
    write_mpii(good)
    data = good.read_bytes()
    (tmp_path / "text.mat").write_text("this is not a mat file\n")
    (tmp_path / "truncated.mat").write_bytes(data[: len(data) // 2])
    scipy.io.savemat(tmp_path / "norelease.mat", {"annotations": np.arange(3)})
    (tmp_path / "dict.json").write_text(json.dumps({"image": "a.jpg", "joints": []}))
    (tmp_path / "strings.json").write_text(json.dumps(["a.jpg", "b.jpg"]))
    (tmp_path / "broken.json").write_text('[{"image": "a.jpg"')
    (tmp_path / "image.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")


@pytest.mark.parametrize("kind, name, message", [
    ("mpii", "text.mat", "not a MATLAB .mat file"),
    ("mpii", "truncated.mat", "truncated or damaged"),
    ("mpii", "norelease.mat", "no variable RELEASE (found: annotations)"),
    ("mpii", "dict.json", "not a list of person records"),
    ("mpii", "strings.json", "entry 0 is not an MPII person record"),
    ("mpii", "broken.json", "not valid JSON"),
    ("mpii", "image.jpg", "neither a MATLAB .mat file nor a JSON list"),
    ("mpii", "absent.mat", "file not found"),
    ("emotic", "text.mat", "not a MATLAB .mat file"),
    ("emotic", "norelease.mat", "no variable train, val, test"),
])
def test_bad_input_is_one_line_exit_1_and_no_output(tmp_path, kind, name, message):
    _bad_inputs(tmp_path)
    out_dir = tmp_path / "out"
    out = out_dir / ("annotations.jsonl" if kind == "mpii" else "emotic")
    r = focus_data("convert", kind, tmp_path / name, "-o", out)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr
    assert name in lines[0] and message in lines[0]
    assert not out_dir.exists() or not any(out_dir.rglob("*"))


def test_wrong_usage_exits_2_names_the_missing_option_and_writes_nothing(tmp_path):
    src = tmp_path / "m.mat"
    write_mpii(src)
    r = focus_data("convert", "mpii", src, cwd=tmp_path)      # no -o
    assert r.returncode == 2 and r.stdout == ""
    assert "Missing option '-o' / '--output'" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.mat"]     # no record, no report anywhere


def test_library_refuses_a_folder_as_output_and_reuses_finished_work(tmp_path):
    from focusclip.core.errors import FocusError
    from focusclip.pipeline.convert import run_convert_mpii

    src = tmp_path / "m.mat"
    write_mpii(src)
    with pytest.raises(FocusError, match="output is a folder"):
        run_convert_mpii(src, tmp_path)
    first = run_convert_mpii(src, tmp_path / "a.jsonl")
    assert not first.extra.get("reused") and first.counts["images"] == 6
    second = run_convert_mpii(src, tmp_path / "a.jsonl")
    assert second.extra["reused"] and second.counts == first.counts
    st = src.stat()                     # a changed source (new mtime) is converted again
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert not run_convert_mpii(src, tmp_path / "a.jsonl").extra.get("reused")
