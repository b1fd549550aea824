"""The demo's headline metric: top-1 among the classes the synthetic world draws, scored by focus-eval.

The synthetic Stanford 40 test set shows 7 of the 40 classes (`DRAWN_CLASSES`); no image shows, and no
training description names, the other 33, so the 40-way top-1 mixes "looks at the person" with where
those 33 untrained prompts happen to sit (docs/focus-effect.md). A focus-eval task file over the same
test images with only the 7 drawn classes (same prompt template and class texts as the built-in
`stanford40-action`, a CSV reader) makes focus-eval score exactly that: the argmax of the same cosine
scores over the drawn columns, as benchmarks/focus_effect.py computes "top-1 of the 7 drawn", with its
CI and its chance and image-blind levels.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from focusclip.core.io import atomic_write_text
from focusclip.data.synthetic.evalsets import DRAWN_CLASSES
from focusclip.pipeline.demo.layout import Layout, Outcome

DRAWN_TASK = "stanford40-drawn"
DRAWN = tuple(sorted(DRAWN_CLASSES))
# The built-in stanford40-action task's prompt (eval/tasks/stanford40-action.json; a test checks they agree).
TEMPLATE = "a photo of a person {}."


def drawn_task(lay: Layout) -> dict:
    """The task file's content: focus-eval's task shape (docs/eval.md, "Your own task")."""
    return {"id": DRAWN_TASK, "title": f"Stanford 40, the {len(DRAWN)} drawn classes", "k": 1,
            "template": TEMPLATE, "dataset": "stanford40", "split": "test",
            "classes": [{"name": c, "text": c.replace("_", " ")} for c in DRAWN],
            "reader": {"name": "csv", "path": lay.drawn_csv.name,    # paths relative to the task file's folder
                       "images": os.path.relpath(lay.eval_root / "stanford40" / "JPEGImages", lay.drawn_task.parent)}}


def write_drawn_task(lay: Layout) -> Outcome | str:
    """tasks/stanford40-drawn.{json,csv} from the synthetic Stanford 40 test split: a row per test image
    (`path,label`), its label from its file name (`<action>_<NNN>.jpg`, as the world and Stanford 40
    name them). Kept when already written with the same content."""
    split = lay.eval_root / "stanford40" / "ImageSplits" / "test.txt"
    if not split.is_file():
        return f"needs {split} (synth)"
    names = [ln.strip() for ln in split.read_text(encoding="utf-8").splitlines() if ln.strip()]
    rows = [(n, Path(n).stem.rsplit("_", 1)[0]) for n in names]
    csv = "path,label\n" + "".join(f"{n},{label}\n" for n, label in rows if label in DRAWN_CLASSES)
    task = json.dumps(drawn_task(lay), indent=2) + "\n"
    if _same(lay.drawn_csv, csv) and _same(lay.drawn_task, task):
        return Outcome("drawn-task", "reused", f"{lay.drawn_task} exists")
    lay.drawn_task.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(lay.drawn_csv, csv)
    atomic_write_text(lay.drawn_task, task)
    return Outcome("drawn-task", "ran", f"focus-eval task: {csv.count(chr(10)) - 1} test images, "
                                        f"{len(DRAWN)} drawn classes → {lay.drawn_task}")


def _same(path: Path, text: str) -> bool:
    return path.is_file() and path.read_text(encoding="utf-8") == text
