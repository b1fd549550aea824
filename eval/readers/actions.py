"""Action datasets: Stanford 40 Actions and Kinetics-400 (docs/formats.md §8, §9)."""
from __future__ import annotations

import csv
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from focusclip.core.errors import fail
from focusclip.data.kinetics import clip_stem, find_videos
from focusclip.eval.readers.base import DatasetSplit, ImageRef, MissingData, Sample, find_dir


# ---------------------------------------------------------------------------------------------
# Stanford 40: JPEGImages/, XMLAnnotations/, ImageSplits/{actions.txt, test.txt}
def read_stanford40(root: Path, split: str = "test") -> DatasetSplit:
    base = find_dir(root, "stanford40", "Stanford40", "StanfordActions")
    if base is None:
        raise MissingData(root / "stanford40" / "ImageSplits" / f"{split}.txt")
    splits = base / "ImageSplits"
    for needed in (splits / "actions.txt", splits / f"{split}.txt"):
        if not needed.is_file():
            raise MissingData(needed)
    classes = stanford40_actions(splits / "actions.txt")
    out = DatasetSplit("stanford40", split, classes, [], source=str(splits / f"{split}.txt"))
    for name in _split_names(splits / f"{split}.txt"):
        image = base / "JPEGImages" / name
        xml = base / "XMLAnnotations" / (Path(name).stem + ".xml")
        if not image.is_file():
            out.skip("image missing")
            continue
        action = _xml_action(xml)
        if action is None:
            out.skip("XML annotation missing or without object/action")
            continue
        out.samples.append(Sample(ImageRef(path=str(image)), (action,), name))
    return out


def stanford40_actions(path: Path) -> list[str]:
    """Class names from `actions.txt` in file order. The first line is the header
    `action_name<TAB>number_of_images`; the separator between name and count is any whitespace."""
    lines = [ln.split() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    lines = [parts for parts in lines if parts]
    if lines and lines[0][0] == "action_name":
        lines = lines[1:]
    return [parts[0] for parts in lines]


def _split_names(path: Path) -> list[str]:
    names = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    # a split file lists image names; tolerate bare stems
    return [n if n.lower().endswith(".jpg") else n + ".jpg" for n in names if n]


def _xml_action(path: Path) -> str | None:
    """`object/action` of the first object (the image's label), or None."""
    if not path.is_file():
        return None
    try:
        node = ET.parse(path).getroot().find("object/action")
    except ET.ParseError:
        return None
    return node.text.strip() if node is not None and node.text and node.text.strip() else None


# ---------------------------------------------------------------------------------------------
# Kinetics-400: annotations/val.csv + frames/val/<id>_<s:06d>_<e:06d>.jpg or videos/val/…
def read_kinetics(root: Path, split: str = "val") -> DatasetSplit:
    base = root / "kinetics400"
    csv_path = _kinetics_csv(base, split)
    frames = base / "frames" / split
    frame_names = set(os.listdir(frames)) if frames.is_dir() else set()
    videos = find_videos(base / "videos" / split)
    if not frame_names and not videos:
        raise MissingData(frames, f"no middle frames and no clips in {base / 'videos' / split}")
    rows = read_kinetics_csv(csv_path)
    classes = sorted({r["label"] for r in rows if r["label"]})  # the val CSV is sorted by label
    out = DatasetSplit("kinetics400", split, classes, [], source=str(csv_path))
    for r in rows:
        if not r["label"]:
            out.skip("no label (test CSV)")
            continue
        if r["stem"] is None:
            out.skip("time_start/time_end not numbers")
            continue
        stem = r["stem"]
        if stem + ".jpg" in frame_names:
            ref = ImageRef(path=str(frames / (stem + ".jpg")))
        elif stem in videos:
            ref = ImageRef(video=str(videos[stem]))  # decoded by the loader; `focus-data frames` caches
        else:
            out.skip("no middle frame and no clip")
            continue
        out.samples.append(Sample(ref, (r["label"],), stem))
    return out


def _kinetics_csv(base: Path, split: str) -> Path:
    names = [f"{split}.csv"] + (["validate.csv"] if split == "val" else [])
    for name in names:
        if (base / "annotations" / name).is_file():
            return base / "annotations" / name
    raise MissingData(base / "annotations" / f"{split}.csv")


def read_kinetics_csv(path: Path) -> list[dict]:
    """Rows of a Kinetics CSV (`label,youtube_id,time_start,time_end,split[,is_cc]`) as dicts with
    `label` ('' when the file has none), `youtube_id` and `stem` (None for unparsable times).
    A real CSV parser: labels with spaces are double-quoted; ids may start with '-'."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = {(h or "").strip() for h in reader.fieldnames or []}
        if not {"youtube_id", "time_start", "time_end"} <= fields:
            raise fail("not a Kinetics CSV (header needs youtube_id,time_start,time_end)", str(path),
                       "pass the annotations CSV of the CVDF or ActivityNet release")
        rows = []
        for raw in reader:
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
            try:
                stem = clip_stem(row["youtube_id"], row["time_start"], row["time_end"])
            except ValueError:
                stem = None  # counted by the caller
            rows.append({"label": row.get("label", ""), "youtube_id": row["youtube_id"], "stem": stem})
    return rows
