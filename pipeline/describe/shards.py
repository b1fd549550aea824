"""The outputs of `describe --shard I/N` read together (by `filter` and `publish`): several files or glob
patterns, and a check that together they describe every image once.

An image is expected when it can be described (people with labelled joints) and its split is one the
shards cover (a run over `--split train` expects no val images). It is missing when no shard has it and
duplicated when two shards do; either refuses the run (one line naming them) unless the caller allows
incomplete shards, e.g. for a `--limit` run.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Mapping, Sequence

from focusclip.core.errors import fail
from focusclip.data.records import Annotation

_GLOB = set("*?[")
SHOWN = 5   # images named in the error, per kind


def expand_paths(items: Sequence[str | os.PathLike], where: str) -> list[Path]:
    """Files and glob patterns (quoted, so the shell leaves them) → the files, sorted per pattern, each
    once. A pattern that matches nothing, or a file that does not exist, is a user error."""
    out: list[Path] = []
    for item in items:
        text = str(item)
        if _GLOB & set(text):
            found = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
            if not found:
                raise fail(f"no file matches '{text}'", where, "check the pattern (quote it: the shell must not "
                                                              "expand it when nothing matches)")
        else:
            found = [Path(text)]
            if not found[0].is_file():
                raise fail("descriptions file not found", text, "check the path")
        out += [p for p in found if p not in out]
    return out


def why_not_describable(a: Annotation) -> str | None:
    """Why describe skips an image (no people, none with labelled joints), or None."""
    if not a.people:
        return "no people"
    if not any(p.num_labelled for p in a.people):
        return "no labelled joints"
    return None


def expected_images(annotations: Mapping[str, Annotation], covered: set[str]) -> set[str]:
    """The images shards covering `covered` should have described together."""
    splits = {annotations[i].split for i in covered if i in annotations}
    return {a.image for a in annotations.values() if a.split in splits and why_not_describable(a) is None}


def check_shards(files: Sequence[Path], covered: Sequence[set[str]], annotations: Mapping[str, Annotation],
                 allow_incomplete: bool, where: str) -> dict:
    """`covered[k]`: the images shard file `files[k]` accounts for. Returns what the report keeps
    (files, missing and duplicated images); raises naming them unless `allow_incomplete`."""
    owners: dict[str, list[str]] = {}
    for path, images in zip(files, covered):
        for image in images:
            owners.setdefault(image, []).append(path.name)
    missing = sorted(expected_images(annotations, set(owners)) - set(owners))
    duplicated = {i: names for i, names in sorted(owners.items()) if len(names) > 1}
    summary = {"files": [str(p) for p in files], "missing": missing, "duplicated": duplicated}
    if (missing or duplicated) and not allow_incomplete:
        parts = []
        if missing:
            parts.append(f"{len(missing)} image(s) missing from every shard ({', '.join(missing[:SHOWN])}"
                         f"{', …' if len(missing) > SHOWN else ''})")
        if duplicated:
            shown = "; ".join(f"{i} in {', '.join(n)}" for i, n in list(duplicated.items())[:SHOWN])
            parts.append(f"{len(duplicated)} described in more than one ({shown}{'; …' if len(duplicated) > SHOWN else ''})")
        raise fail(f"the {len(files)} shard files do not describe every image once: {' and '.join(parts)}", where,
                   "describe the missing shard or images (describe --shard I/N), drop a file given twice, or "
                   "pass --allow-incomplete-shards")
    return summary
