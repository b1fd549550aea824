"""Any dual encoder through the one model argument: a tiny SiglipModel and a tiny CLIPModel, built from
small configs and saved locally, ranked as transformers' own zero-shot pipeline ranks them, with the
scores in the predictions file turning into the pipeline's probabilities by the documented formula."""
from __future__ import annotations

import json

import numpy as np
import pytest

from focusclip.eval.predictions import read_predictions
from focusclip.eval.readers import load_image, read_for_task
from focusclip.eval.run import task_samples
from focusclip.eval.tasks import select_tasks
from tests.eval import fixtures as fx
from tests.eval.test_cli import focus_eval
from tests.eval.tiny_models import save_tiny_checkpoint, save_tiny_hf_clip, save_tiny_siglip, save_tiny_siglip2

TASK = "utkface-race"


def pipeline_ranking(folder, data, task_id):
    """transformers' zero-shot image classification pipeline on the task's images: per image, the class
    indices best first and their probabilities."""
    from transformers import pipeline

    task = select_tasks([task_id])[0]
    samples, _, _ = task_samples(task, read_for_task(task, data), None)
    texts = [c.text for c in task.classes]
    classify = pipeline("zero-shot-image-classification", model=str(folder), device="cpu")
    ranked = []
    for s in samples:
        out = classify(load_image(s.image), candidate_labels=texts, hypothesis_template=task.template)
        ranked.append(([texts.index(o["label"]) for o in out], [o["score"] for o in out]))
    return ranked


SAVERS = {"siglip": save_tiny_siglip, "siglip2": save_tiny_siglip2, "clip": save_tiny_hf_clip}


@pytest.mark.parametrize("kind", ["siglip", "siglip2", "clip"])
def test_a_dual_encoder_folder_ranks_as_the_transformers_pipeline(tmp_path, kind):
    """SigLIP 2's processor gives patches, a patch mask and the grid's shape, not pixels [3, S, S]."""
    data = tmp_path / "data"
    fx.write_utkface(data)
    folder = SAVERS[kind](tmp_path / f"{kind}-tiny")
    out, preds = tmp_path / "r.json", tmp_path / "p.parquet"
    r = focus_eval(folder, "--data-root", data, "--task", TASK, "-o", out, "--predictions", preds,
                   "--workers", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["model"] == f"hf-{kind}:{kind}-tiny"
    assert res["tasks"][TASK]["options"]["resize"] == "processor"
    df, meta = read_predictions(preds)
    info = meta["models"][res["model"]]
    rows = df[df["task"] == TASK].sort_values("index")
    want = pipeline_ranking(folder, data, TASK)
    assert len(rows) == len(want) == res["tasks"][TASK]["n"] == 10
    for (_, row), (order, probs) in zip(rows.iterrows(), want):
        prob = dict(zip(order, probs))                           # the pipeline's probability per class
        ours = list(row["topk"])
        assert sorted(ours) == sorted(order)                     # 5 classes: the whole ranking
        cos = np.asarray(row["topk_scores"], np.float64)
        if kind != "clip":     # each class on its own: sigmoid(scale · cos + bias)
            got = 1 / (1 + np.exp(-(info["logit_scale"] * cos + info["logit_bias"])))
        else:                  # over the classes: softmax(scale · cos)
            got = np.exp(info["logit_scale"] * cos) / np.exp(info["logit_scale"] * cos).sum()
        np.testing.assert_allclose(got, [prob[c] for c in ours], rtol=1e-4, atol=1e-7)
        # the same ranking: best first by the pipeline's numbers (classes a random tiny model scores
        # alike to 1e-6 may come in either order: batches of 64 and of 1 round differently)
        assert all(prob[a] >= prob[b] * (1 - 1e-5) for a, b in zip(ours, ours[1:])), (ours, order)
        if max(probs) > 1.001 * sorted(probs)[-2]:
            assert ours[0] == order[0]
    if kind != "clip":
        assert (info["logit_scale"], info["logit_bias"]) == pytest.approx((10.0, -10.0))


def test_the_model_argument_takes_a_checkpoint_or_a_clip_and_hf_clip_still_works(tmp_path):
    """A focus-train run and a CLIP folder through the same argument; the CLIP gives the numbers (and
    the name) --hf-clip gives it."""
    data = tmp_path / "data"
    fx.write_utkface(data)
    save_tiny_checkpoint(tmp_path / "run")
    clip = save_tiny_hf_clip(tmp_path / "clip-tiny")
    got = {}
    for label, args in {"run": [tmp_path / "run"], "clip": [clip], "hf-clip": ["--hf-clip", clip]}.items():
        out = tmp_path / f"{label}.json"
        r = focus_eval(*args, "--data-root", data, "--task", TASK, "-o", out, "--workers", "0", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        got[label] = json.loads(out.read_text())
    assert got["run"]["model"] == "tiny-clip@3"
    assert got["clip"]["model"] == got["hf-clip"]["model"] == "hf-clip:clip-tiny"
    for key in ("n", "top1", "topk", "balanced_accuracy", "confusion"):
        assert got["clip"]["tasks"][TASK][key] == got["hf-clip"]["tasks"][TASK][key], key


def test_a_model_that_is_not_a_dual_encoder_is_one_line(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(tmp_path / "bert")
    fx.write_utkface(tmp_path / "data")
    r = focus_eval(tmp_path / "bert", "--data-root", tmp_path / "data", "--task", TASK, cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'bert'}: dual encoder: BertModel has no get_image_features/get_text_features, so it "
        "is not a dual encoder (pass a CLIP-style model (CLIP, SigLIP, AltCLIP, …) or a focus-train checkpoint)")
