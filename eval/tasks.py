"""The 12 zero-shot tasks of docs/design.md §5, loaded from the data files in `eval/tasks/*.json`.

A task file lists its classes in label order, each with the dataset's spelling (`name`), the phrase
put into the prompt (`text`) and, for age groups, the inclusive upper age (`max_age`, null = none);
`template` is the paper's single prompt template, `ensemble` the templates averaged with
`--ensemble`. Everything is ordered by the file (lists only, never sets or dict iteration of
computed keys), so prompt i describes class i under any PYTHONHASHSEED.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from focusclip.core.errors import fail
from focusclip.eval.readers.base import norm_name

TASKS_DIR = Path(str(resources.files("focusclip.eval") / "tasks"))


@dataclass(frozen=True)
class TaskClass:
    name: str                      # as the dataset spells it (label matching ignores case and _)
    text: str                      # what goes into the template's {}
    max_age: float | None = None   # age tasks: inclusive upper bound of the group


@dataclass(frozen=True)
class Task:
    id: str
    title: str
    dataset: str
    split: str
    k: int                          # the paper's top-k: 3 for activity and emotion tasks, else 1
    kind: str                       # activity | emotion | age | race
    multi_label: bool
    reader: tuple[tuple[str, str], ...]  # reader name and its keyword arguments
    template: str
    ensemble: tuple[str, ...]
    classes: tuple[TaskClass, ...]

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def age_bins(self) -> list[tuple[str, float | None]]:
        return [(c.name, c.max_age) for c in self.classes]

    def templates(self, ensemble: bool = False) -> list[str]:
        return list(self.ensemble) if ensemble else [self.template]

    def prompts(self, ensemble: bool = False) -> list[list[str]]:
        """[C][T] prompt strings: row i holds class i's prompt under each template."""
        return [[t.replace("{}", c.text) for t in self.templates(ensemble)] for c in self.classes]

    def label_index(self) -> dict[str, int]:
        """Normalised class name → label index, for mapping a reader's label names."""
        return {norm_name(c.name): i for i, c in enumerate(self.classes)}


def task_from_dict(d: dict, where: str) -> Task:
    try:
        classes = tuple(TaskClass(str(c["name"]), str(c["text"]), c.get("max_age")) for c in d["classes"])
        task = Task(id=d["id"], title=d["title"], dataset=d["dataset"], split=d["split"], k=int(d["k"]),
                    kind=d["kind"], multi_label=bool(d.get("multi_label", False)),
                    reader=tuple((str(k), str(v)) for k, v in d["reader"].items()),
                    template=d["template"], ensemble=tuple(d.get("ensemble") or [d["template"]]),
                    classes=classes)
    except (KeyError, TypeError, ValueError) as e:
        raise fail(f"task file is missing or mistypes {e}", where, "compare with eval/tasks/*.json") from None
    _validate(task, where)
    return task


def _validate(task: Task, where: str) -> None:
    for t in (task.template, *task.ensemble):
        if t.count("{}") != 1:
            raise fail(f"template {t!r} needs exactly one {{}}", where, "fix the template")
    if len({norm_name(c.name) for c in task.classes}) != len(task.classes):
        raise fail("two classes share a name", where, "class names must be unique")
    if len({c.text for c in task.classes}) != len(task.classes):
        raise fail("two classes share a prompt text", where, "each class needs its own text")
    if not 1 <= task.k <= len(task.classes):
        raise fail(f"k={task.k} outside 1..{len(task.classes)}", where, "fix k")
    if task.kind == "age" and any(c.max_age is not None for c in task.classes):
        uppers = [c.max_age for c in task.classes]
        if uppers[-1] is not None or any(u is None for u in uppers[:-1]) or uppers[:-1] != sorted(uppers[:-1]):
            raise fail("age groups must rise and end with max_age null", where, "fix max_age")


@lru_cache(maxsize=1)
def all_tasks() -> tuple[Task, ...]:
    """Every task, in the order of docs/design.md §5 (the files' `order` field)."""
    loaded = []
    for path in sorted(TASKS_DIR.glob("*.json")):
        d = json.loads(path.read_text(encoding="utf-8"))
        loaded.append((int(d.get("order", 999)), d["id"], task_from_dict(d, str(path))))
    return tuple(t for _, _, t in sorted(loaded, key=lambda x: (x[0], x[1])))


def load_task_file(path: Path) -> Task:
    """A user's own task (`--task-file`): the shape of eval/tasks/*.json, with `id`, `k`, `template`,
    `classes` and `reader` required (`{"name": "imagefolder", "root": DIR}` or `{"name": "csv", "path":
    FILE}`); `title`, `dataset`, `split`, `kind`, `multi_label` and `ensemble` have defaults. The
    reader's paths are relative to the task file's folder. Its id must not be a built-in task's."""
    from focusclip.eval.readers import OWN_READERS

    path = Path(path)
    where = str(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise fail("task file not found", where, "pass a JSON task file (docs/eval.md, Your own task)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise fail(f"not valid JSON ({type(e).__name__})", where, "fix the task file") from None
    if not isinstance(d, dict) or not isinstance(d.get("reader"), dict):
        raise fail("a task file is a JSON object with a `reader` object", where,
                   'add "reader": {"name": "imagefolder", "root": "DIR"} or {"name": "csv", "path": "FILE"}')
    reader = dict(d["reader"])
    if reader.get("name") not in OWN_READERS:
        raise fail(f"reader {reader.get('name')!r} is not one for your own data", where,
                   f"use one of {', '.join(OWN_READERS)}")
    for arg in OWN_READERS[reader["name"]]:
        if reader.get(arg):
            reader[arg] = str((path.parent / str(reader[arg])).resolve())
    d = {"title": d.get("id"), "dataset": reader["name"], "split": "all", "kind": "custom", **d, "reader": reader}
    task = task_from_dict(d, where)
    if task.id in task_ids():
        raise fail(f"task id {task.id!r} is a built-in task's", where, "give your task another id")
    return task


def task_ids() -> list[str]:
    return [t.id for t in all_tasks()]


def select_tasks(ids: list[str] | None) -> list[Task]:
    """The tasks named by `--task` (all when none), in benchmark order; unknown ids are an error."""
    tasks = all_tasks()
    if not ids:
        return list(tasks)
    known = {t.id: t for t in tasks}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise fail(f"unknown task {unknown[0]!r}", "--task", f"choose from {', '.join(known)}")
    return [t for t in tasks if t.id in set(ids)]
