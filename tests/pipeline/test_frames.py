"""`focus-data frames`: middle frames of Kinetics clips, resumable, through the real console script."""
from __future__ import annotations

import json
import os
import subprocess

import numpy as np
from PIL import Image

from focusclip.data.kinetics import clip_stem, middle_frame, parse_clip_stem
from tests.conftest import console_script
from tests.eval.fixtures import write_clip

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
CLIPS = {  # relative path under videos/val → middle-frame colour (RGB)
    "air_drumming/--nQbRBEz2s_000104_000114.mp4": (200, 40, 40),
    "0wR5jVB-WPk_000417_000427.mp4": (40, 200, 40),
}


def focus_data(*args):
    return subprocess.run([console_script("focus-data"), *map(str, args)], env=ENV, capture_output=True,
                          text=True, timeout=120)


def test_clip_names_round_trip():
    assert clip_stem("--nQbRBEz2s", "104.0", 114) == "--nQbRBEz2s_000104_000114"
    assert parse_clip_stem("--nQbRBEz2s_000104_000114") == ("--nQbRBEz2s", 104, 114)
    assert parse_clip_stem("clip_1_2") is None


def test_middle_frame_is_the_middle_one(tmp_path):
    write_clip(tmp_path / "c.mp4", middle=(30, 60, 220), frames=7)
    frame = middle_frame(tmp_path / "c.mp4")                    # BGR
    assert np.abs(frame[:, :, ::-1].reshape(-1, 3).mean(0) - (30, 60, 220)).max() < 14
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    assert middle_frame(tmp_path / "bad.mp4") is None


def test_frames_command_extracts_resumes_and_counts(tmp_path):
    videos = tmp_path / "kinetics400" / "videos" / "val"
    for rel, rgb in CLIPS.items():
        write_clip(videos / rel, middle=rgb)
    (videos / "aaaaaaaaaaa_000001_000011.mp4").write_bytes(b"not a video")   # undecodable
    write_clip(videos / "holiday.mp4", middle=(1, 2, 3))                     # name not <id>_<s>_<e>
    r = focus_data("frames", "--data-root", tmp_path)
    assert r.returncode == 0, r.stderr
    frames = tmp_path / "kinetics400" / "frames" / "val"
    for rel, rgb in CLIPS.items():
        img = Image.open(frames / (rel.split("/")[-1][:-4] + ".jpg")).convert("RGB")
        assert np.abs(np.asarray(img, float).reshape(-1, 3).mean(0) - rgb).max() < 14
    assert sorted(p.name for p in frames.glob("*.jpg")) == ["--nQbRBEz2s_000104_000114.jpg",
                                                             "0wR5jVB-WPk_000417_000427.jpg"]
    report = json.loads((frames / "report.json").read_text())
    assert report["counts"] == {"extracted": 2, "clips": 4}
    assert report["skipped"] == {"undecodable video": 1, "name is not <youtube id>_<start:06d>_<end:06d>": 1}
    assert "2 extracted" in r.stdout

    before = (frames / "0wR5jVB-WPk_000417_000427.jpg").stat().st_mtime_ns
    r = focus_data("frames", "--data-root", tmp_path)
    assert r.returncode == 0 and json.loads((frames / "report.json").read_text())["skipped"]["already done"] == 2
    assert (frames / "0wR5jVB-WPk_000417_000427.jpg").stat().st_mtime_ns == before
    r = focus_data("frames", "--data-root", tmp_path, "--force")
    assert json.loads((frames / "report.json").read_text())["counts"]["extracted"] == 2
    assert not list(frames.glob(".*.tmp"))


def test_no_clips_is_a_user_error(tmp_path):
    r = focus_data("frames", "--data-root", tmp_path)
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "kinetics400/videos/val" in r.stderr
