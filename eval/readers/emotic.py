"""EMOTIC through the project's converter (`converters.emotic.read_emotic`, docs/formats.md §2).

Layout under --data-root: `emotic/Annotations/Annotations.mat` and the image folders
(`mscoco/images/…`, `emodb_small/images/…`, …) either beside `Annotations/` or inside `emotic/`
again, as the official archive unpacks. One sample per annotated person, cropped to the body box
(the converter has already clamped it to the image).
"""
from __future__ import annotations

from pathlib import Path

from focusclip.eval.readers.base import DatasetSplit, ImageRef, MissingData, Sample

AGE_GROUPS = ["Kid", "Teenager", "Adult"]


def read_emotic_split(root: Path, split: str = "test", target: str = "emotion") -> DatasetSplit:
    from focusclip.converters.emotic import CATEGORIES, read_emotic

    base = root / "emotic"
    mat = next((p for p in (base / "Annotations" / "Annotations.mat", base / "Annotations.mat")
                if p.is_file()), None)
    if mat is None:
        raise MissingData(base / "Annotations" / "Annotations.mat")
    people = read_emotic(mat)[split]
    classes = list(CATEGORIES) if target == "emotion" else list(AGE_GROUPS)
    out = DatasetSplit("emotic", split, classes, [], source=str(mat))
    image_roots = [base / "emotic", base]
    for p in people:
        key = f"{p['image']}#{p['person']}"
        labels = tuple(p["categories"]) if target == "emotion" else ((p["age"],) if p.get("age") else ())
        if not labels:
            out.skip("no emotion categories" if target == "emotion" else "age missing")
            continue
        if p.get("body_box") is None:
            out.skip("no body box")
            continue
        image = next((r / p["image"] for r in image_roots if (r / p["image"]).is_file()), None)
        if image is None:
            out.skip("image missing")
            continue
        out.samples.append(Sample(ImageRef(path=str(image), box=tuple(p["body_box"])), labels, key))
    return out
