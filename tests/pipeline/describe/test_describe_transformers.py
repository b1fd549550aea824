"""The `transformers` backend on a tiny randomly initialised GPT-2 with a tokenizer built here."""
from __future__ import annotations

import pytest

from focusclip.core.errors import FocusError
from focusclip.core.io import read_jsonl
from focusclip.prompts import build_prompt
from tests.pipeline.describe.test_describe import describe_flat, random_annotations

CHAT_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}"
                 "{% if add_generation_prompt %}<assistant>{% endif %}")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    torch.set_num_threads(1)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-gpt2")
    corpus = [build_prompt(a).system + " " + build_prompt(a).user for a in random_annotations(20)]
    corpus.append("<system> <user> <assistant>")  # role markers as ordinary words, so they decode
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(
        special_tokens=["<pad>", "<eos>", "<unk>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    config = GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=1024, n_embd=32, n_layer=1, n_head=2,
                        bos_token_id=fast.eos_token_id, eos_token_id=fast.eos_token_id,
                        pad_token_id=fast.pad_token_id)
    GPT2LMHeadModel(config).save_pretrained(path)
    return path


def test_batched_generation_writes_one_record_per_image(tiny_model, tmp_path):
    anns = random_annotations(5)
    out = tmp_path / "tiny.jsonl"
    report = describe_flat(anns, out, backend="transformers", model=str(tiny_model), concurrency=2,
                           max_tokens=6, temperature=0.0, device="cpu")
    rows = read_jsonl(out)
    assert sorted(r["image"] for r in rows) == sorted(a.image for a in anns)
    for r in rows:
        assert r["backend"] == "transformers" and r["describer"] == tiny_model.name
        assert r["description"].strip() and r["finish_reason"] in ("stop", "length")
        assert 1 <= r["usage"]["completion_tokens"] <= 6 and r["usage"]["prompt_tokens"] > 100
    assert report.extra["usage"]["completion_tokens"] == sum(r["usage"]["completion_tokens"] for r in rows)
    # Greedy decoding of the same prompt gives the same text, batched or alone.
    again = tmp_path / "again.jsonl"
    describe_flat(anns[:1], again, backend="transformers", model=str(tiny_model), concurrency=1, max_tokens=6,
                  temperature=0.0, device="cpu")
    first = {r["image"]: r["description"] for r in rows}
    assert read_jsonl(again)[0]["description"] == first[anns[0].image]
    assert describe_flat(anns, out, backend="transformers", model=str(tiny_model), device="cpu",
                         temperature=0.0, max_tokens=6).counts["asked"] == 0


def test_model_directory_errors(tmp_path):
    with pytest.raises(FocusError, match="config.json"):
        describe_flat(random_annotations(1), tmp_path / "o.jsonl", backend="transformers", model=str(tmp_path))
    with pytest.raises(FocusError, match="--model"):
        describe_flat(random_annotations(1), tmp_path / "o.jsonl", backend="transformers")


def test_model_loads_in_the_dtype_it_was_saved_in(tiny_model, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from focusclip.pipeline.describe.local import TransformersBackend
    from focusclip.pipeline.describe.types import GenParams

    bf16 = tmp_path / "bf16"
    AutoModelForCausalLM.from_pretrained(tiny_model).to(torch.bfloat16).save_pretrained(bf16)
    for f in tiny_model.iterdir():                                   # the tokenizer and its chat template
        if not (bf16 / f.name).exists():
            (bf16 / f.name).write_bytes(f.read_bytes())
    _, model, device = TransformersBackend(str(bf16), GenParams(device="cpu"))._load()
    assert model.dtype == torch.bfloat16 and device == "cpu"      # not upcast to fp32
    _, model, _ = TransformersBackend(str(tiny_model), GenParams(device="cpu"))._load()
    assert model.dtype == torch.float32


def test_hub_id_downloads_through_the_hub_and_cold_offline_is_one_line(tiny_model, tmp_path):
    """`--model org/tiny-gpt2` against a loopback hub (HF_ENDPOINT), as the console script."""
    import json
    import os
    import subprocess

    from tests.conftest import console_script
    from tests.hub_server import HubServer

    ann = tmp_path / "annotations.jsonl"
    ann.write_text("".join(json.dumps(a.to_dict()) + "\n" for a in random_annotations(3)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1", OMP_NUM_THREADS="1")

    def describe(out, **extra):
        return subprocess.run([console_script("focus-data"), "describe", str(ann), "-o", str(out), "--backend",
                               "transformers", "--model", "org/tiny-gpt2", "--max-tokens", "4", "--temperature",
                               "0", "--device", "cpu"], capture_output=True, text=True, timeout=300,
                              env={**env, **extra})

    with HubServer() as hub:
        commit = hub.serve("org/tiny-gpt2", tiny_model)
        env["HF_ENDPOINT"] = hub.url
        r = describe(tmp_path / "d.jsonl")
        assert r.returncode == 0, r.stderr
        rows = read_jsonl(tmp_path / "d.jsonl")
        assert len(rows) == 3 and all(row["describer"] == "tiny-gpt2" and row["description"] for row in rows)
        assert f"/org/tiny-gpt2/resolve/{commit}/model.safetensors" in [r.path for r in hub.requests if r.method == "GET"]
        cold = tmp_path / "cold.jsonl"
        r = describe(cold, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "empty"))
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert r.stderr.strip().splitlines()[-1].startswith(
            "error: --model: describer model: org/tiny-gpt2 is not in the Hugging Face cache"), r.stderr
        assert not cold.exists()


def test_sampled_text_depends_on_the_recorded_seed_not_on_the_batch(tiny_model, tmp_path):
    anns = random_annotations(3)
    kw = dict(backend="transformers", model=str(tiny_model), max_tokens=8, temperature=1.0, device="cpu")
    describe_flat(anns, tmp_path / "batch.jsonl", concurrency=3, **kw)
    batched = {r["image"]: r for r in read_jsonl(tmp_path / "batch.jsonl")}
    for i, a in enumerate(anns):   # each image alone, with the seed its record names
        alone = tmp_path / f"alone{i}.jsonl"
        describe_flat([a], alone, concurrency=1, seed=batched[a.image]["params"]["seed"], **kw)
        assert read_jsonl(alone)[0]["description"] == batched[a.image]["description"]
    describe_flat(anns, tmp_path / "seed1.jsonl", concurrency=3, seed=1, **kw)
    other = {r["image"]: r["description"] for r in read_jsonl(tmp_path / "seed1.jsonl")}
    assert other != {k: r["description"] for k, r in batched.items()}     # the seed matters


def test_seeded_sampling_draws_from_softmax_over_temperature():
    import torch

    from focusclip.pipeline.describe.local import SeededSampling

    scores = torch.tensor([[2.0, 1.0, 0.0, -1.0, -float("inf")]]).repeat(200, 1)   # [B, V]
    temperature = 0.7
    sampler = SeededSampling(range(200), temperature, "cpu")
    counts = torch.zeros(5)
    for _ in range(100):            # 200 rows × 100 steps = 20,000 draws
        counts += torch.bincount(sampler(None, scores).argmax(-1), minlength=5)
    expected = torch.softmax(scores[0] / temperature, -1)
    assert counts[4] == 0
    assert torch.allclose(counts / counts.sum(), expected, atol=0.01), (counts / counts.sum(), expected)
    # Row i's draws come from generator seed i alone: the same row in a smaller batch draws the same.
    again = SeededSampling([5], temperature, "cpu")(None, scores[:1])
    assert torch.equal(again, SeededSampling(range(200), temperature, "cpu")(None, scores)[5:6])
