"""Kinetics-400 clip naming and middle-frame decoding, shared by `focus-data frames` and `focus-eval`.

Clips are named `{youtube_id}_{start:06d}_{end:06d}.mp4` by torchvision and the ActivityNet
crawler (docs/formats.md §9); a clip's middle frame is saved under the same stem as a JPEG.
YouTube ids may start with `-`, so names are never parsed as command-line options.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

VIDEO_EXTS = (".mp4", ".mkv", ".webm", ".avi", ".mov")
# an 11-character YouTube id, then start and end seconds with 6 digits
_STEM = re.compile(r"^(?P<id>[A-Za-z0-9_-]{11})_(?P<start>\d{6})_(?P<end>\d{6})$")


def clip_stem(youtube_id: str, start: float | int | str, end: float | int | str) -> str:
    """`--nQbRBEz2s`, 104, 114 → `--nQbRBEz2s_000104_000114` (seconds may come as "104.0")."""
    return f"{youtube_id}_{int(float(start)):06d}_{int(float(end)):06d}"


def parse_clip_stem(stem: str) -> tuple[str, int, int] | None:
    """The inverse of `clip_stem`; None for a name that does not follow the convention."""
    m = _STEM.match(stem)
    if not m:
        return None
    return m["id"], int(m["start"]), int(m["end"])


def find_videos(folder: Path) -> dict[str, Path]:
    """Clip stem → path for every video under `folder`, flat or in class sub-folders (torchvision
    layout). Sorted walk, so a duplicated stem resolves the same way every time (first wins)."""
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() in VIDEO_EXTS and p.is_file():
            found.setdefault(p.stem, p)
    return found


def quiet_decoder() -> None:
    """Silence FFmpeg's and OpenCV's own logging: an undecodable clip is counted as a skip with its
    reason, not a line of C-library noise per clip. The environment can turn them back on
    (OPENCV_FFMPEG_LOGLEVEL, read at each capture; OPENCV_LOG_LEVEL)."""
    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")   # AV_LOG_QUIET
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def middle_frame(video: str | Path) -> np.ndarray | None:
    """The middle frame of a clip as a BGR uint8 array [H, W, 3], or None when OpenCV cannot decode
    it. Seeks to frame count // 2; when the container reports no frame count (or the seek fails),
    counts the frames with `grab` (no decoding) and reopens the clip to read the middle one."""
    import cv2

    quiet_decoder()
    count = _frame_count(video)
    if count == 0:
        return None
    cap = cv2.VideoCapture(str(video))
    try:
        if count > 0:
            cap.set(cv2.CAP_PROP_POS_FRAMES, count // 2)
            ok, frame = cap.read()
            if ok and frame is not None:
                return frame
            # the reported count was wrong or the container cannot seek: count by grabbing
            cap.release()
            count = _frame_count(video, trust_header=False)
            cap = cv2.VideoCapture(str(video))
        for _ in range(count // 2):
            cap.grab()
        ok, frame = cap.read()
        return frame if ok else None
    finally:
        cap.release()


def _frame_count(video: str | Path, trust_header: bool = True) -> int:
    """Frames in a clip: the container's count when it gives one, else counted with `grab`;
    0 when the clip does not open."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    try:
        if not cap.isOpened():
            return 0
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if trust_header else 0
        if n > 0:
            return n
        while cap.grab():
            n += 1
        return n
    finally:
        cap.release()
