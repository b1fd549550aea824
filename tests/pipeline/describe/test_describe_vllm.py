"""The offline `vllm` backend against `FakeVLLM` (tests/pipeline/describe/fake_vllm.py), a stand-in that
behaves as vLLM 0.34's `LLM` does for the calls the backend makes (vLLM itself needs a GPU)."""
from __future__ import annotations

import json

import pytest

from focusclip.core.errors import FocusError
from focusclip.core.hub import Source
from focusclip.core.io import read_jsonl
from focusclip.pipeline.describe.stage import REFUSED, DescribeOptions, run_describe
from focusclip.pipeline.describe.types import GenParams
from focusclip.prompts import build_prompt
from tests.pipeline.describe.fake_vllm import FakeVLLM
from tests.pipeline.describe.test_describe import image_seed, random_annotations

# What the model's generation_config.json sets (Qwen3's, less its eos list)
OWN = {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "repetition_penalty": 1.05}


@pytest.fixture
def fake(monkeypatch):
    from focusclip.pipeline.describe import local

    monkeypatch.setattr(local, "ENGINES", local._Engines())   # no engine left from another test
    return FakeVLLM(monkeypatch)


@pytest.fixture
def model_dir(tmp_path):
    """A save_pretrained folder: its config is all the model check reads, its generation_config all vLLM's
    defaults read."""
    model = tmp_path / "Qwen3-8B"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "generation_config.json").write_text(json.dumps({**OWN, "do_sample": True, "eos_token_id": [1, 2]}))
    return model


def _tokens(ann) -> int:
    """The fake's token count of an image's conversation."""
    return sum(len(m["content"].split()) + 3 for m in build_prompt(ann).messages)


def _vllm(model_dir, out, **gen):
    return DescribeOptions(None, out, backend="vllm", model=str(model_dir), gen=GenParams(**gen))


def test_one_engine_across_rounds_and_a_prompt_too_long_costs_its_image_alone(fake, model_dir, tmp_path):
    anns = random_annotations(40)
    long = max(anns, key=_tokens)
    limit = sorted(map(_tokens, anns))[-2]          # every conversation fits but the longest
    assert _tokens(long) > limit
    out = tmp_path / "v.jsonl"
    report = run_describe(_vllm(model_dir, out, max_model_len=limit), records=anns, progress=False)

    rows = read_jsonl(out)
    assert sorted(r["image"] for r in rows) == sorted(a.image for a in anns if a is not long)
    assert (report.counts["described"], report.counts["refused"], report.counts.get("failed", 0)) == (39, 1, 0)
    assert report.skipped == {REFUSED: 1}
    assert report.extra["failures"] == [{"image": long.image, "refused": True, "error": (
        f"vLLM: This model's maximum context length is {limit} tokens. However, your prompt contains "
        f"{_tokens(long)} input tokens, which exceeds this limit even without any output tokens. Please reduce "
        f"the length of the input prompt. (parameter=input_tokens, value={_tokens(long)})")}]
    # every other conversation was generated once; the long one was last tried alone
    assert sorted(fake.generated()) == sorted(build_prompt(a).user for a in anns if a is not long)
    assert fake.calls[0]["n"] == 40 and fake.calls[0]["refused"]     # one call: 4 × max_num_seqs (256) ≥ 40
    assert [c for c in fake.calls if c["n"] == 1][-1]["users"] == [build_prompt(long).user]

    # the model's own settings and each image's seed went to vLLM and into the record
    for call in fake.calls:
        assert call["chat_template_kwargs"] == {"enable_thinking": False}
        for sp in call["params"]:
            assert {k: getattr(sp, k) for k in OWN} == OWN and sp.max_tokens == 512
    for r in rows:
        assert r["description"].endswith(f"[seed {image_seed(0, r['image'])}]")
        assert r["params"] == {**OWN, "min_p": 0.0, "max_tokens": 512, "seed": image_seed(0, r["image"]),
                               "run_seed": 0}
    # no --concurrency: no max_num_seqs (vLLM's own default fits the GPU), and no engine seed
    assert fake.engines == [{"model": str(model_dir), "tensor_parallel_size": 1, "dtype": "auto",
                             "max_model_len": limit}]

    # a regeneration round (as filter --regenerate runs it) reuses the engine
    redo = frozenset(a.image for a in anns[:2] if a is not long)
    opts = _vllm(model_dir, out, max_model_len=limit)
    again = run_describe(DescribeOptions(**{**opts.__dict__, "redo_images": redo, "round": 1}), records=anns,
                         progress=False)
    assert len(fake.engines) == 1
    assert (again.counts["described"], again.counts["refused"]) == (len(redo), 1)   # the long one: refused again
    latest = {r["image"]: r for r in read_jsonl(out)}
    assert {i: latest[i]["params"]["seed"] for i in redo} == {i: image_seed(0, i, 1) for i in redo}


def test_concurrency_is_max_num_seqs_only_when_given_and_sets_the_chunks(fake, model_dir, tmp_path):
    anns = random_annotations(20)
    run_describe(_vllm(model_dir, tmp_path / "c.jsonl", concurrency=3, temperature=0.2, top_p=0.5, thinking=True,
                       tensor_parallel_size=2, dtype="bfloat16"), records=anns, progress=False)
    assert fake.engines == [{"model": str(model_dir), "tensor_parallel_size": 2, "dtype": "bfloat16",
                             "max_num_seqs": 3}]
    assert [c["n"] for c in fake.calls] == [12, 8]      # 4 × max_num_seqs per call, answers written after each
    for call in fake.calls:
        assert call["chat_template_kwargs"] == {}        # --thinking: the template's own default
        for sp in call["params"]:   # what the user set replaces the model's own; the rest stays
            assert (sp.temperature, sp.top_p, sp.top_k, sp.repetition_penalty) == (0.2, 0.5, 20, 1.05)
    assert len(read_jsonl(tmp_path / "c.jsonl")) == 20


def test_a_model_without_generation_defaults_samples_with_vllms_own(fake, tmp_path):
    model = tmp_path / "plain"
    model.mkdir()
    (model / "config.json").write_text("{}")
    run_describe(_vllm(model, tmp_path / "p.jsonl"), records=random_annotations(2), progress=False)
    params = read_jsonl(tmp_path / "p.jsonl")[0]["params"]
    assert {k: params[k] for k in ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_tokens")} == \
        {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0, "max_tokens": 512}


def test_revision_pins_the_hub_snapshot_and_is_refused_where_it_means_nothing(fake, model_dir, tmp_path):
    from focusclip.pipeline.describe.local import _vllm_model, vllm_engine_args

    commit = "0123456789abcdef0123456789abcdef01234567"
    model, revision = _vllm_model(Source("hub", "Qwen/Qwen3-8B", "v1.1", commit))
    assert vllm_engine_args(model, GenParams(), revision) == {
        "model": "Qwen/Qwen3-8B", "tensor_parallel_size": 1, "dtype": "auto", "revision": commit}
    with pytest.raises(FocusError, match="a revision .* applies to hub ids"):
        run_describe(DescribeOptions(None, tmp_path / "r.jsonl", backend="vllm", model=str(model_dir),
                                     revision="v1"), records=random_annotations(1), progress=False)
    with pytest.raises(FocusError, match="--revision"):
        run_describe(DescribeOptions(None, tmp_path / "t.jsonl", revision="v1"), records=random_annotations(1),
                     progress=False)
    assert fake.engines == []


def test_no_vllm_is_one_line_before_any_work(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "vllm", None)   # import vllm raises ImportError
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "vllm" else object())
    with pytest.raises(FocusError, match=r"pip install focusclip\[vllm\]"):
        run_describe(DescribeOptions(None, tmp_path / "n.jsonl", backend="vllm", model="some/model"),
                     records=random_annotations(1), progress=False)
    assert not (tmp_path / "n.jsonl").exists()
