"""Task files: 12 tasks, prompt i describes class i, identically under different hash seeds."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from focusclip.core.errors import FocusError
from focusclip.eval.readers import read_for_task
from focusclip.eval.run import task_samples
from focusclip.eval.tasks import TASKS_DIR, all_tasks, select_tasks, task_from_dict
from tests.eval import fixtures as fx

REPO = Path(__file__).resolve().parents[2]
DUMP = ("import json; from eval.tasks import all_tasks; "
        "print(json.dumps({t.id: [t.class_names, t.prompts(), t.prompts(True)] for t in all_tasks()}))")


# class names whose prompt uses another word form (FER+ columns are nouns, prompts adjectives)
SYNONYMS = {"happiness": "happy", "sadness": "sad", "anger": "angry", "fear": "afraid", "Others": "other"}


def dump_with_seed(seed: str) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run([sys.executable, "-c", DUMP], cwd=REPO, env=env, capture_output=True, text=True,
                         check=True, timeout=120)
    return json.loads(out.stdout)


def test_prompt_i_is_class_i_under_two_hash_seeds():
    a, b = dump_with_seed("1"), dump_with_seed("4242")
    assert a == b
    assert len(a) == 12
    for task_id, (names, prompts, ensemble) in a.items():
        raw = json.loads((TASKS_DIR / f"{task_id}.json").read_text())
        # independently of eval.tasks: class i of the file, formatted into the file's template
        assert names == [c["name"] for c in raw["classes"]]
        assert prompts == [[raw["template"].replace("{}", c["text"])] for c in raw["classes"]]
        assert ensemble == [[t.replace("{}", c["text"]) for t in raw["ensemble"]] for c in raw["classes"]]
        for name, row in zip(names, prompts):
            words = SYNONYMS.get(name, name).lower().replace("_", " ").replace("/", " ").split()
            assert any(w in row[0].lower() for w in words), (task_id, name, row)


def test_task_table_matches_design():
    tasks = {t.id: t for t in all_tasks()}
    assert list(tasks) == ["stanford40-action", "kinetics400-action", "emotic-emotion", "emotic-age",
                           "fer2013-emotion", "ferplus-emotion", "fairface-age", "fairface-race",
                           "utkface-age", "utkface-race", "lagenda-age-body", "lagenda-age-face"]
    assert {i for i, t in tasks.items() if t.k == 3} == {"stanford40-action", "kinetics400-action",
                                                         "emotic-emotion", "fer2013-emotion", "ferplus-emotion"}
    assert len(tasks["kinetics400-action"].classes) == 400 and len(tasks["stanford40-action"].classes) == 40
    assert tasks["utkface-age"].age_bins == [("baby", 2), ("child", 9), ("teenager", 19), ("young adult", 29),
                                             ("adult", None)]
    assert tasks["lagenda-age-body"].age_bins == [("kid", 12), ("teenager", 19), ("adult", None)]
    assert tasks["emotic-emotion"].multi_label and "Doubt/Confusion" in tasks["emotic-emotion"].class_names
    assert tasks["fairface-age"].class_names[-1] == "more than 70"


def test_reader_labels_map_onto_task_classes_whatever_the_file_order(tmp_path):
    fx.write_stanford40(tmp_path)
    task = select_tasks(["stanford40-action"])[0]
    samples, labels, skipped = task_samples(task, read_for_task(task, tmp_path), None)
    names = task.class_names
    assert [names[lab[0]] for lab in labels] == ["applauding", "reading", "phoning", "watching_TV"]
    # actions.txt has another order (phoning after reading); indices follow the task file
    assert labels[1][0] > labels[2][0]


def test_limit_keeps_evenly_spaced_samples(tmp_path):
    names = [n for n, _, _ in fx.write_utkface(tmp_path)]   # the 10 well-formed names, sorted
    task = select_tasks(["utkface-age"])[0]
    samples, labels, _ = task_samples(task, read_for_task(task, tmp_path), 3)
    assert [s.key for s in samples] == [names[0], names[3], names[6]]
    assert len(labels) == 3


@pytest.mark.parametrize("bad, message", [
    ({"template": "no slot"}, "exactly one"),
    ({"classes": [{"name": "a", "text": "x"}, {"name": "A", "text": "y"}]}, "share a name"),
    ({"classes": [{"name": "a", "text": "x"}, {"name": "b", "text": "x"}]}, "share a prompt text"),
])
def test_bad_task_files_are_user_errors(bad, message):
    good = json.loads((TASKS_DIR / "utkface-race.json").read_text())
    with pytest.raises(FocusError, match=message):
        task_from_dict({**good, "k": 1, **bad}, "x.json")


def test_unknown_task_id_is_a_user_error():
    with pytest.raises(FocusError, match="unknown task 'nope'"):
        select_tasks(["nope"])
