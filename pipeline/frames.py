"""`focus-data frames`: the middle frame of every Kinetics-400 clip, as focus-eval reads it.

    DATA_ROOT/kinetics400/videos/<split>/[<class>/]<id>_<start:06d>_<end:06d>.mp4
      → DATA_ROOT/kinetics400/frames/<split>/<id>_<start:06d>_<end:06d>.jpg

Resumable (frames already written are skipped; `force` redoes them), atomic (each JPEG is written
to a temporary file and renamed), with a report in the frames folder. Clips are decoded by OpenCV
in a pool of threads: its decoder releases the GIL.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path


from focusclip.core.errors import fail
from focusclip.core.io import atomic_write_bytes
from focusclip.core.report import Report, report_path_for
from focusclip.core.preflight import writable_dir
from focusclip.data.kinetics import find_videos, middle_frame, parse_clip_stem
from focusclip.core.progress import progress


@dataclass(frozen=True)
class FramesConfig:
    data_root: Path
    split: str = "val"
    force: bool = False
    limit: int | None = None
    workers: int = os.cpu_count() or 1
    jpeg_quality: int = 95


def frames_dir(data_root: Path, split: str) -> Path:
    return Path(data_root) / "kinetics400" / "frames" / split


def extract_one(video: Path, out: Path, quality: int) -> str:
    """Write the clip's middle frame to `out`; returns "" on success, else the skip reason."""
    import cv2

    frame = middle_frame(video)
    if frame is None:
        return "undecodable video"
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        return "JPEG encoding failed"
    atomic_write_bytes(out, buf.tobytes())
    return ""


def run_frames(cfg: FramesConfig) -> Report:
    videos_dir = Path(cfg.data_root) / "kinetics400" / "videos" / cfg.split
    videos = find_videos(videos_dir)
    if not videos:
        raise fail("no video clips found", str(videos_dir),
                   "put the Kinetics clips (<id>_<start>_<end>.mp4) there, flat or in class folders")
    out_dir = writable_dir(frames_dir(cfg.data_root, cfg.split), "--data-root")
    report = Report("frames", {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()})
    todo = _plan(videos, out_dir, cfg, report)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, cfg.workers)) as pool:
        jobs = pool.map(lambda vo: extract_one(vo[0], vo[1], cfg.jpeg_quality), todo)
        for (video, _), reason in progress(zip(todo, jobs), total=len(todo), desc="frames", unit="clip"):
            if reason:
                report.skip(reason, video.name)
            else:
                report.count("extracted")
    report.time("extract_s", time.perf_counter() - t0)
    _check_outcome(report, videos_dir)
    report.save(report_path_for(out_dir))
    return report


def _check_outcome(report: Report, videos_dir: Path) -> None:
    """Clips of which none gave a frame, and none was done before, is no input: a user error (no
    frame file and no report is written then)."""
    if not report.counts.get("extracted") and not report.skipped.get("already done"):
        reasons = ", ".join(f"{n} {why}" for why, n in report.skipped.items())
        raise fail(f"no frame could be extracted from the {report.counts.get('clips', 0)} clips ({reasons})",
                   str(videos_dir), "check that the clips are Kinetics .mp4 files that OpenCV can decode")


def _plan(videos: dict[str, Path], out_dir: Path, cfg: FramesConfig, report: Report) -> list[tuple[Path, Path]]:
    """(clip, frame path) pairs still to do, in name order; counts what is skipped and why."""
    todo = []
    for stem, video in sorted(videos.items()):
        if cfg.limit is not None and len(todo) >= cfg.limit:
            break
        if parse_clip_stem(stem) is None:
            report.skip("name is not <youtube id>_<start:06d>_<end:06d>", video.name)
            continue
        out = out_dir / f"{stem}.jpg"
        if out.is_file() and out.stat().st_size > 0 and not cfg.force:
            report.skip("already done")
            continue
        todo.append((video, out))
    report.count("clips", len(videos))
    return todo
