"""Metrics, checked on hand-made scores and on a fake model whose embeddings come from the labels."""
from __future__ import annotations

import json

import numpy as np
import pytest

from focusclip.eval.metrics import (balanced_accuracy, bootstrap_ci, classification_metrics, confusion_matrix,
                                    hits_at, image_blind_levels, top_predictions)
from focusclip.eval.run import EvalOptions, run_eval
from focusclip.eval.tasks import TASKS_DIR
from tests.eval import fixtures as fx
from tests.eval.fakes import ColourModel


def prompt_classes(task_id: str) -> dict[str, int]:
    """Prompt text → class index, straight from the task file (not through eval.tasks)."""
    raw = json.loads((TASKS_DIR / f"{task_id}.json").read_text())
    return {t.replace("{}", c["text"]): i for i, c in enumerate(raw["classes"]) for t in raw["ensemble"]}


def test_metrics_on_hand_made_scores():
    scores = np.array([[0.9, 0.5, 0.1, 0.0],     # true 0: top-1 hit
                       [0.8, 0.7, 0.6, 0.0],     # true 2: top-3 hit only
                       [0.1, 0.0, 0.3, 0.9],     # true 1: miss (top-3 is 3, 2, 0)
                       [0.0, 0.9, 0.0, 0.0]])    # true 1: hit; ties among the rest
    m = classification_metrics(scores, [[0], [2], [1], [1]], k=3)
    assert (m["n"], m["k"], m["top1"], m["topk"]) == (4, 3, 0.5, 0.75)
    # per-class top-1 recall: class 0 1/1, class 1 1/2, class 2 0/1 → mean 0.5
    assert m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["confusion"] == [[1, 0, 0, 0], [0, 1, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0]]
    lo, hi = m["ci95"]
    assert lo < 0.75 < hi and 0 <= lo and hi <= 1


def test_multi_label_hit_when_any_true_label_is_in_top_k():
    scores = np.array([[0.1, 0.9, 0.8, 0.0, 0.0],
                       [0.9, 0.0, 0.5, 0.0, 0.8]])
    m = classification_metrics(scores, [[3, 2], [1, 3]], k=3)
    assert m["top1"] == 0.0 and m["topk"] == 0.5          # sample 0: 2 in top-3; sample 1: neither
    assert np.array(m["confusion"]).sum() == 4             # one count per true label


def test_bootstrap_interval_matches_resampling_by_hand():
    hits = np.array([1] * 70 + [0] * 30, dtype=bool)
    lo, hi = bootstrap_ci(hits)
    rng = np.random.default_rng(1)
    means = hits[rng.integers(0, 100, (4000, 100))].mean(axis=1)   # the textbook bootstrap
    ref = np.percentile(means, [2.5, 97.5])
    assert abs(lo - ref[0]) <= 0.02 and abs(hi - ref[1]) <= 0.02
    assert bootstrap_ci(np.ones(10, bool)) == [1.0, 1.0]


# --- single-label unit checks, each on a hand-worked example ----------------------------------------
def test_top_predictions_best_first_ties_to_the_lower_index_and_k_capped():
    scores = np.array([[0.1, 0.7, 0.7, 0.3],
                       [0.5, 0.5, 0.5, 0.5],
                       [-1.0, -3.0, -2.0, 0.0]])
    assert top_predictions(scores, 3).tolist() == [[1, 2, 3], [0, 1, 2], [3, 0, 2]]
    assert top_predictions(scores, 9).shape == (3, 4)            # k above C: every class, ranked
    assert top_predictions(scores, 1).tolist() == [[1], [0], [3]]


def test_hits_at_k_counts_the_true_class_among_the_first_k():
    preds = np.array([[2, 0, 1], [1, 2, 0], [0, 1, 2]])
    labels = [[2], [0], [2]]
    assert hits_at(preds, labels, 1).tolist() == [True, False, False]
    assert hits_at(preds, labels, 2).tolist() == [True, False, False]
    assert hits_at(preds, labels, 3).tolist() == [True, True, True]


def test_balanced_accuracy_is_the_mean_recall_over_the_classes_present():
    # class 0: 3 samples, all right; class 1: 1 sample, wrong; class 2: none (left out, not a 0)
    pred1 = np.array([0, 0, 0, 2])
    labels = [[0], [0], [0], [1]]
    assert balanced_accuracy(pred1, labels, 3) == pytest.approx((3 / 3 + 0 / 1) / 2)   # 0.5, top-1 is 0.75
    # 2 of 4 right in class 0, 1 of 2 in class 2 → (0.5 + 0.5) / 2; 5 of 8 in class 1 → (0.5+0.625+0.5)/3
    pred1 = np.array([0, 0, 1, 2] + [2, 0] + [1] * 5 + [0, 0, 2])
    labels = [[0]] * 4 + [[2]] * 2 + [[1]] * 8
    assert balanced_accuracy(pred1, labels, 3) == pytest.approx((0.5 + 0.625 + 0.5) / 3)
    assert np.isnan(balanced_accuracy(np.zeros(0, int), [], 3))


def test_confusion_rows_are_true_classes_columns_top1():
    pred1 = np.array([0, 2, 2, 1, 0])
    labels = [[0], [0], [2], [1], [1]]
    assert confusion_matrix(pred1, labels, 3).tolist() == [[1, 0, 1],
                                                          [1, 1, 0],
                                                          [0, 0, 1]]


def test_classification_metrics_on_an_imbalanced_single_label_set():
    # 5 samples, 3 classes; scores chosen so top-1 = [0, 0, 0, 2, 1], top-2 second = [1, 2, 1, 0, 2]
    scores = np.array([[0.9, 0.5, 0.1],
                       [0.8, 0.1, 0.3],
                       [0.7, 0.6, 0.0],
                       [0.4, 0.0, 0.8],
                       [0.2, 0.9, 0.5]])
    labels = [[0], [0], [1], [0], [2]]
    m = classification_metrics(scores, labels, k=2)
    assert (m["n"], m["k"]) == (5, 2)
    assert m["top1"] == pytest.approx(2 / 5)                     # samples 0 and 1
    assert m["topk"] == pytest.approx(5 / 5)                     # every true class is in its top 2
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 0 + 0) / 3)
    assert m["confusion"] == [[2, 0, 1], [1, 0, 0], [0, 1, 0]]
    assert m["ci95"] == [1.0, 1.0]                               # all hits: no spread to resample
    assert m["ci95_top1"] == bootstrap_ci(np.array([1, 1, 0, 0, 0], bool))


def test_no_samples_gives_nan_not_an_error():
    m = classification_metrics(np.zeros((0, 3)), [], k=2)
    assert m["n"] == 0 and all(np.isnan(m[key]) for key in ("top1", "topk", "balanced_accuracy"))
    assert all(np.isnan(v) for v in m["ci95"] + m["ci95_top1"]) and m["confusion"] == [[0] * 3] * 3


def test_bootstrap_interval_is_the_binomial_spread_deterministic_by_seed():
    # n = 400 at p = 0.5: the resampled mean has sd √(p(1−p)/n) = 0.025, so the 95% interval is about
    # 0.5 ± 1.96 · 0.025 = [0.451, 0.549]
    hits = np.array([True, False] * 200)
    lo, hi = bootstrap_ci(hits)
    assert lo == pytest.approx(0.5 - 1.96 * 0.025, abs=0.006)
    assert hi == pytest.approx(0.5 + 1.96 * 0.025, abs=0.006)
    assert bootstrap_ci(hits) == [lo, hi]                        # seeded: the same interval every run
    assert bootstrap_ci(np.zeros(7, bool)) == [0.0, 0.0]
    assert all(np.isnan(bootstrap_ci(np.zeros(0, bool))))
    # ten times the samples, a third of the width (√10 ≈ 3.16)
    wide, narrow = bootstrap_ci(hits[:40]), bootstrap_ci(np.tile(hits[:40], 10))
    assert (wide[1] - wide[0]) / (narrow[1] - narrow[0]) == pytest.approx(np.sqrt(10), rel=0.15)


def test_image_blind_levels_from_label_counts():
    # 10 test samples over 4 classes with counts 5, 3, 2, 0
    levels = image_blind_levels([2, 5, 0, 3], k=2)
    assert levels == pytest.approx({"chance_top1": 1 / 4, "chance_topk": 2 / 4,
                                    "blind_top1": 5 / 10, "blind_topk": (5 + 3) / 10})
    assert image_blind_levels([1, 1], k=3)["chance_topk"] == 1.0


def run_fake(tmp_path, task_id, model, workers=0):
    out = tmp_path / "results.json"
    run_eval(EvalOptions(data_root=tmp_path / "data", output=out, tasks=(task_id,), workers=workers,
                         batch_size=4, device="cpu", plot=False), model=model)
    return json.loads(out.read_text())["tasks"][task_id]


def test_true_labels_give_accuracy_one_through_readers_and_dataloader(tmp_path):
    fx.write_utkface(tmp_path / "data", colour_by="race")
    model = ColourModel([fx.colour(r) for r in range(5)], prompt_classes("utkface-race"))
    entry = run_fake(tmp_path, "utkface-race", model, workers=2)
    assert (entry["n"], entry["top1"], entry["topk"], entry["balanced_accuracy"]) == (10, 1.0, 1.0, 1.0)
    assert entry["skipped"] == {"count": 4, "reasons": {"malformed file name": 4}}
    assert np.trace(np.array(entry["confusion"])) == 10


def test_fixed_wrong_mapping_gives_the_known_accuracy(tmp_path):
    want = fx.write_utkface(tmp_path / "data", colour_by="race")
    swap = [1, 0, 2, 3, 4]                                  # White and Black exchanged
    model = ColourModel([fx.colour(r) for r in range(5)], prompt_classes("utkface-race"), mapping=swap)
    entry = run_fake(tmp_path, "utkface-race", model)
    races = [r for _, _, r in want]
    assert entry["top1"] == pytest.approx(np.mean([swap[r] == r for r in races]))   # 5 of 10
    present = sorted(set(races))
    assert entry["balanced_accuracy"] == pytest.approx(np.mean([swap[c] == c for c in present]))
    expected = np.zeros((5, 5), int)
    for r in races:
        expected[r, swap[r]] += 1
    assert entry["confusion"] == expected.tolist()


def test_top3_on_a_k3_task_when_top1_is_always_wrong(tmp_path):
    fx.write_fer_folders(tmp_path / "data")
    derange = [(c + 1) % 7 for c in range(7)]
    # fer2013 task classes are in CSV order; the folders were painted colour(i) in folder order
    folder_order = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    csv_order = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    colours = [fx.colour(folder_order.index(name)) for name in csv_order]
    model = ColourModel(colours, prompt_classes("fer2013-emotion"), mapping=derange)
    entry = run_fake(tmp_path, "fer2013-emotion", model)
    assert (entry["k"], entry["n"], entry["top1"], entry["topk"]) == (3, 7, 0.0, 1.0)
    assert entry["classes"] == ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]


# --- multi-label (EMOTIC): one definition per metric, docs/eval.md "Metrics" -------------------------
def test_multi_label_metrics_on_a_hand_worked_example():
    # top-2 per row:  s0 → 0, 1   s1 → 1, 3   s2 → 3, 0   s3 → 2, 1
    scores = np.array([[0.9, 0.5, 0.1, 0.0],
                       [0.1, 0.8, 0.0, 0.4],
                       [0.6, 0.2, 0.1, 0.7],
                       [0.0, 0.3, 0.9, 0.2]])
    labels = [[0, 1], [1], [1, 2], [2]]
    m = classification_metrics(scores, labels, k=2)
    # a sample is a hit when any of its labels is among the first 1 / 2 predictions
    assert m["top1"] == pytest.approx(3 / 4)                      # s0, s1, s3
    assert m["topk"] == pytest.approx(3 / 4)                      # s2's labels 1, 2 are not in (3, 0)
    # one count per true label in the row of that label, the column of the top-1 prediction
    assert m["confusion"] == [[1, 0, 0, 0],                       # s0 → 0
                              [1, 1, 0, 1],                       # s0 → 0, s1 → 1, s2 → 3
                              [0, 0, 1, 1],                       # s2 → 3, s3 → 2
                              [0, 0, 0, 0]]
    # per-class top-1 recall: class 0 1/1 (s0), class 1 1/3 (only s1's top-1 is 1), class 2 1/2 (s3);
    # class 3 carries no sample. Crediting every label of a sample whose top-1 hits one of them would
    # give class 1 2/3 (s0 counted) and a mean of 13/18.
    assert m["balanced_accuracy"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)     # 11/18
    assert m["metric_version"] == 2


def reference_balanced_accuracy(scores: np.ndarray, labels) -> float:
    """The definition in docs/eval.md, word for word: for each class c, over the samples whose labels
    include c, the share whose top-1 is c; the mean over the classes present."""
    recalls = []
    for c in range(scores.shape[1]):
        carrying = [i for i, lab in enumerate(labels) if c in lab]
        if carrying:
            recalls.append(np.mean([int(np.argmax(scores[i])) == c for i in carrying]))
    return float(np.mean(recalls))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multi_label_balanced_accuracy_matches_the_definition_and_the_confusion_matrix(seed):
    rng = np.random.default_rng(seed)
    n, num_classes = 60, 7
    scores = rng.normal(size=(n, num_classes))
    # skewed label sets of 1 to 3 classes, drawn by the true top-1 half of the time
    labels = []
    for row in scores:
        size = int(rng.integers(1, 4))
        lab = set(rng.choice(num_classes, size=size, replace=False, p=np.arange(1, num_classes + 1) / 28).tolist())
        if rng.random() < 0.5:
            lab.add(int(np.argmax(row)))
        labels.append(sorted(lab))
    m = classification_metrics(scores, labels, k=3)
    assert m["balanced_accuracy"] == pytest.approx(reference_balanced_accuracy(scores, labels))
    cm = np.array(m["confusion"])
    rows = cm.sum(axis=1)
    assert rows.tolist() == [sum(c in lab for lab in labels) for c in range(num_classes)]
    assert m["balanced_accuracy"] == pytest.approx(np.mean(np.diag(cm)[rows > 0] / rows[rows > 0]))
    assert m["top1"] == pytest.approx(np.mean([int(np.argmax(s)) in lab for s, lab in zip(scores, labels)]))
    top3 = np.argsort(-scores, axis=1)[:, :3]
    assert m["topk"] == pytest.approx(np.mean([bool(set(t) & set(lab)) for t, lab in zip(top3, labels)]))


def emotic_model(mapping: dict[str, str]) -> ColourModel:
    """A colour model for emotic-emotion: the fixture's green, magenta and yellow person crops are the
    classes Happiness, Doubt/Confusion and Anger; `mapping` says which class each is predicted as."""
    raw = json.loads((TASKS_DIR / "emotic-emotion.json").read_text())
    names = [c["name"] for c in raw["classes"]]
    painted = {"Happiness": (20, 200, 20), "Doubt/Confusion": (200, 20, 200), "Anger": (200, 200, 20)}
    colours = [painted.get(name, (5 * i, 5 * i, 5 * i)) for i, name in enumerate(names)]   # the rest: dark greys
    order = list(range(len(names)))
    for true, guess in mapping.items():
        order[names.index(true)] = names.index(guess)
    return ColourModel(colours, prompt_classes("emotic-emotion"), mapping=order)


def test_emotic_balanced_accuracy_is_the_confusion_diagonal_over_its_rows(tmp_path):
    fx.write_emotic(tmp_path / "data")
    # green (Happiness + Pleasure) → Happiness; magenta (Doubt/Confusion) → Anger; yellow (Anger) → Anger
    entry = run_fake(tmp_path, "emotic-emotion", emotic_model({"Doubt/Confusion": "Anger"}))
    classes = entry["classes"]
    cm = np.array(entry["confusion"])
    hap, ple, doubt, anger = (classes.index(c) for c in ("Happiness", "Pleasure", "Doubt/Confusion", "Anger"))
    assert entry["n"] == 3 and cm.sum() == 4                      # three people, four labels
    assert (cm[hap, hap], cm[ple, hap], cm[doubt, anger], cm[anger, anger]) == (1, 1, 1, 1)
    assert entry["top1"] == pytest.approx(2 / 3)
    # Happiness 1/1, Pleasure 0/1 (its sample's top-1 is Happiness), Doubt/Confusion 0/1, Anger 1/1
    assert entry["balanced_accuracy"] == pytest.approx(0.5)
    rows = cm.sum(axis=1)
    assert entry["balanced_accuracy"] == pytest.approx(np.mean(np.diag(cm)[rows > 0] / rows[rows > 0]))
    assert entry["metric_version"] == 2
