"""The `transformers` backend on a tiny randomly initialised GPT-2 with a tokenizer built here."""
from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from focusclip.core.errors import FocusError
from focusclip.core.io import read_jsonl
from focusclip.prompts import build_prompt
from tests.pipeline.describe.test_describe import describe_flat, image_seed, random_annotations

CHAT_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}"
                 "{% if add_generation_prompt %}<assistant>{% endif %}")


def tiny_tokenizer(path, specials=("<pad>", "<eos>", "<unk>")):
    """A word-level tokenizer over the prompts' words, with CHAT_TEMPLATE, saved in `path`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [build_prompt(a).system + " " + build_prompt(a).user for a in random_annotations(20)]
    corpus.append("<system> <user> <assistant> There")  # role markers as ordinary words, so they decode
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=list(specials)))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    return tok, fast


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.set_num_threads(1)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-gpt2")
    tok, fast = tiny_tokenizer(path)
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


def test_sampled_text_depends_on_the_image_seed_not_on_the_batch(tiny_model, tmp_path):
    anns = random_annotations(3)
    twin = dataclasses.replace(anns[0], image="twin.jpg")     # the same prompt under another image name
    assert build_prompt(twin).messages == build_prompt(anns[0]).messages
    kw = dict(backend="transformers", model=str(tiny_model), max_tokens=8, temperature=1.0, device="cpu")
    describe_flat(anns + [twin], tmp_path / "batch.jsonl", concurrency=4, seed=7, **kw)
    batched = {r["image"]: r for r in read_jsonl(tmp_path / "batch.jsonl")}
    assert {i: r["params"]["seed"] for i, r in batched.items()} == {i: image_seed(7, i) for i in batched}
    # Two images in one batch draw their own noise: one prompt, two texts (with one seed: one text).
    assert batched["twin.jpg"]["description"] != batched[anns[0].image]["description"]
    for i, a in enumerate(anns):   # each image alone, with the run's seed: the text it had in the batch
        alone = tmp_path / f"alone{i}.jsonl"
        describe_flat([a], alone, concurrency=1, seed=batched[a.image]["params"]["run_seed"], **kw)
        assert read_jsonl(alone)[0]["description"] == batched[a.image]["description"]
    describe_flat(anns, tmp_path / "seed1.jsonl", concurrency=3, seed=1, **kw)
    other = {r["image"]: r["description"] for r in read_jsonl(tmp_path / "seed1.jsonl")}
    assert other != {k: batched[k]["description"] for k in other}     # the seed matters


def test_seeded_sampling_draws_from_softmax_over_temperature():
    import torch

    from focusclip.pipeline.describe.local import NEUTRAL, SeededSampling, sampling_processors

    scores = torch.tensor([[2.0, 1.0, 0.0, -1.0, -float("inf")]]).repeat(200, 1)   # [B, V]
    temperature = 0.7

    def sample(seeds, rows, **settings):
        procs = sampling_processors({**NEUTRAL, "temperature": temperature, **settings}, seeds, "cpu")
        return lambda: _apply(procs, rows)

    def _apply(procs, rows):
        out = rows
        for p in procs:
            out = p(None, out)
        return out

    for settings, expected in (({}, torch.softmax(scores[0] / temperature, -1)),
                               ({"top_k": 2}, torch.softmax(scores[0, :2] / temperature, -1))):
        draw = sample(range(200), scores, **settings)
        counts = torch.zeros(5)
        for _ in range(100):            # 200 rows × 100 steps = 20,000 draws
            counts += torch.bincount(draw().argmax(-1), minlength=5)
        assert counts[4] == 0
        freq = (counts / counts.sum())[:len(expected)]
        assert torch.allclose(freq, expected, atol=0.01), (settings, freq, expected)
        assert counts[len(expected):].sum() == 0
    # Row i's draws come from generator seed i alone: the same row in a smaller batch draws the same.
    again = SeededSampling([5], "cpu")(None, scores[:1])
    assert torch.equal(again, SeededSampling(range(200), "cpu")(None, scores)[5:6])


def test_the_models_generation_config_is_the_default_and_the_record_lists_it(tiny_model, tmp_path):
    """generation_config.json with top_k=1: sampling at the model's own temperature is then greedy."""
    model = tmp_path / "with-config"
    shutil.copytree(tiny_model, model)
    config = json.loads((model / "generation_config.json").read_text())
    config.update(temperature=1.3, top_k=1, top_p=0.9, do_sample=True)
    (model / "generation_config.json").write_text(json.dumps(config))
    anns = random_annotations(4)
    kw = dict(backend="transformers", model=str(model), max_tokens=8, device="cpu", concurrency=4)
    describe_flat(anns, tmp_path / "own.jsonl", **kw)                       # no --temperature, no --top-p
    describe_flat(anns, tmp_path / "greedy.jsonl", temperature=0.0, **kw)
    own, greedy = read_jsonl(tmp_path / "own.jsonl"), read_jsonl(tmp_path / "greedy.jsonl")
    assert [r["description"] for r in own] == [r["description"] for r in greedy]   # top_k=1 applied
    assert {k: own[0]["params"][k] for k in ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")} == \
        {"temperature": 1.3, "top_p": 0.9, "top_k": 1, "min_p": 0.0, "repetition_penalty": 1.0}
    # what the user sets replaces the model's own; the rest stays
    describe_flat(anns[:1], tmp_path / "set.jsonl", temperature=0.8, top_p=0.5, **kw)
    params = read_jsonl(tmp_path / "set.jsonl")[0]["params"]
    assert (params["temperature"], params["top_p"], params["top_k"]) == (0.8, 0.5, 1)
    # a model that sets nothing samples with vLLM's neutral settings (no top-k: not transformers' 50)
    describe_flat(anns[:1], tmp_path / "plain.jsonl", **{**kw, "model": str(tiny_model)})
    params = read_jsonl(tmp_path / "plain.jsonl")[0]["params"]
    assert {k: params[k] for k in ("temperature", "top_p", "top_k")} == {"temperature": 1.0, "top_p": 1.0, "top_k": 0}


@pytest.fixture(scope="module")
def turn_model(tmp_path_factory):
    """A bigram GPT-2 built by hand: after the prompt's last token it writes "There", then <end_of_turn>,
    which its generation_config lists as an eos besides the tokenizer's <eos>."""
    torch = pytest.importorskip("torch")
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    path = tmp_path_factory.mktemp("turn-gpt2")
    tok, fast = tiny_tokenizer(path, specials=("<pad>", "<eos>", "<unk>", "<end_of_turn>"))
    vocab = tok.get_vocab()
    eos, eot, last, there = vocab["<eos>"], vocab["<end_of_turn>"], vocab[">"], vocab["There"]
    config = GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=1024, n_embd=32, n_layer=1, n_head=2,
                        tie_word_embeddings=False, bos_token_id=eos, eos_token_id=eos, pad_token_id=fast.pad_token_id)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    v1, v2 = torch.zeros(32), torch.zeros(32)
    v1[0], v1[1], v2[2], v2[3] = 1.0, -1.0, 1.0, -1.0     # zero mean: ln_f maps each to 4 × itself
    with torch.no_grad():
        for block in model.transformer.h:                  # the blocks add nothing: the residual is wte[token]
            for proj in (block.attn.c_proj, block.mlp.c_proj):
                proj.weight.zero_()
                proj.bias.zero_()
        model.transformer.wpe.weight.zero_()
        model.transformer.wte.weight[last] = v1
        model.transformer.wte.weight[there] = v2
        model.lm_head.weight.zero_()
        model.lm_head.weight[there] = 10 * v1              # ">" → "There" (logit 80, every other 0)
        model.lm_head.weight[eot] = 10 * v2                # "There" → <end_of_turn>
    model.generation_config = GenerationConfig(eos_token_id=[eos, eot], pad_token_id=fast.pad_token_id)
    model.save_pretrained(path)
    assert fast.eos_token_id == eos != eot
    return path


def test_the_models_end_of_turn_token_stops_the_answer(turn_model, tmp_path):
    out = tmp_path / "turn.jsonl"
    describe_flat(random_annotations(2), out, backend="transformers", model=str(turn_model), max_tokens=12,
                  temperature=0.0, device="cpu", concurrency=2)
    rows = read_jsonl(out)
    assert [(r["description"], r["finish_reason"], r["usage"]["completion_tokens"]) for r in rows] == \
        [("There", "stop", 2)] * 2


def test_revision_loads_that_snapshot_of_a_hub_model(tiny_model, turn_model, tmp_path):
    """`--model org/m --revision v1` against a loopback hub serving two branches, as the console script."""
    import os
    import subprocess

    from tests.conftest import console_script
    from tests.hub_server import HubServer

    ann = tmp_path / "annotations.jsonl"
    ann.write_text("".join(json.dumps(a.to_dict()) + "\n" for a in random_annotations(2)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1", OMP_NUM_THREADS="1")
    with HubServer() as hub:
        hub.serve("org/m", tiny_model)
        hub.serve("org/m", turn_model, revision="v1")
        env["HF_ENDPOINT"] = hub.url
        for revision in ("v1", "nope"):
            out = tmp_path / f"{revision}.jsonl"
            r = subprocess.run([console_script("focus-data"), "describe", str(ann), "-o", str(out), "--backend",
                                "transformers", "--model", "org/m", "--revision", revision, "--max-tokens", "6",
                                "--temperature", "0", "--device", "cpu"], capture_output=True, text=True,
                               timeout=300, env=env)
            if revision == "v1":
                assert r.returncode == 0, r.stderr
                assert [(row["description"], row["finish_reason"]) for row in read_jsonl(out)] == [("There", "stop")] * 2
            else:
                assert r.returncode == 1 and "no such revision" in r.stderr.strip().splitlines()[-1], r.stderr
