"""Local-model backends: `vllm` (offline batched `LLM.chat`) and `transformers` (a model with a chat
template, batched `generate`). Both import their library only when they run. `--model` is a hub id
(downloaded and cached the way transformers does: HF_HUB_OFFLINE, HF_ENDPOINT, HF_TOKEN for gated
models) or a save_pretrained folder; `focusclip.core.hub` checks it before any work starts.

Both sample each image from its own seeded generator, so the seed a record names reproduces its text
whatever else was in the batch: vLLM takes a seed per request; for transformers, `SeededSampling`
draws each row's token with its own `torch.Generator`."""
from __future__ import annotations

from typing import Sequence

from focusclip.core.errors import fail
from focusclip.core.hub import Source, load, resolve
from focusclip.pipeline.describe.types import Answer, Emit, GenParams, Job

MODEL = dict(what="describer model", key="--model")

VLLM_CHUNK = 256  # conversations per LLM.chat call (at least): answers are written after each chunk


def _chunks(items: Sequence, n: int):
    for i in range(0, len(items), max(1, n)):
        yield items[i:i + n]


def vllm_requests(jobs: Sequence[Job], params: GenParams) -> tuple[list[list[dict]], list[dict]]:
    """The conversations and the per-request `SamplingParams` keyword arguments for `LLM.chat`."""
    conversations = [job.prompt.messages for job in jobs]
    sampling = [{"temperature": params.temperature, "max_tokens": params.max_tokens, "seed": job.seed}
                for job in jobs]
    return conversations, sampling


def vllm_engine_args(model: str, params: GenParams) -> dict:
    """Keyword arguments for `vllm.LLM`: `--concurrency` is the number of sequences it schedules at
    once (`max_num_seqs`); the context length, tensor parallelism and dtype are the user's."""
    args = {"model": model, "seed": params.seed, "max_num_seqs": params.concurrency,
            "tensor_parallel_size": params.tensor_parallel_size, "dtype": params.dtype}
    if params.max_model_len is not None:
        args["max_model_len"] = params.max_model_len
    return args


def import_vllm():
    try:
        import vllm
    except ImportError:
        raise _no_vllm() from None
    return vllm


def _no_vllm():
    return fail("the vllm backend needs vllm, which is not installed", "--backend vllm",
                "pip install focusclip[vllm]")


class VLLMBackend:
    name = "vllm"

    def __init__(self, model: str, params: GenParams):
        import importlib.util

        if importlib.util.find_spec("vllm") is None:  # say so before any work starts
            raise _no_vllm()
        self.model, self.params = model, params
        self.source = resolve(model, **MODEL)        # a missing folder, an unknown id, offline and uncached

    def prepare(self) -> None:
        """The model loads in `run` (vLLM reports its own loading)."""

    def run(self, jobs: Sequence[Job], emit: Emit) -> None:
        if not jobs:
            return
        vllm = import_vllm()
        llm = vllm.LLM(**vllm_engine_args(_vllm_model(self.source), self.params))
        for chunk in _chunks(list(jobs), max(VLLM_CHUNK, self.params.concurrency)):
            conversations, sampling = vllm_requests(chunk, self.params)
            outputs = llm.chat(conversations, [vllm.SamplingParams(**kw) for kw in sampling], use_tqdm=False)
            for job, out in zip(chunk, outputs):
                emit(job, *vllm_answer(out, self.params.max_tokens))


def _vllm_model(source: Source) -> str:
    """What vLLM loads: the folder, the hub id (vLLM downloads it through huggingface_hub), or, when
    the hub cannot be asked (offline, unreachable), the cached snapshot's folder."""
    if source.kind == "hub" and source.local_only:
        from huggingface_hub import snapshot_download

        return snapshot_download(source.name, revision=source.commit, local_files_only=True)
    return source.name


def vllm_answer(out, max_tokens: int) -> tuple[Answer | None, str | None]:
    """A vllm RequestOutput to (answer, None), or (None, reason) when it holds no text."""
    completion = out.outputs[0] if getattr(out, "outputs", None) else None
    text = (completion.text if completion else "").strip()
    if not text:
        return None, "the model returned no text"
    usage = {"prompt_tokens": len(out.prompt_token_ids or []), "completion_tokens": len(completion.token_ids)}
    return Answer(text, completion.finish_reason, usage, max_tokens), None


class TransformersBackend:
    """A Hugging Face causal LM (hub id or folder), in the dtype it was saved in; `concurrency` is
    the batch size."""
    name = "transformers"

    def __init__(self, model: str, params: GenParams):
        self.model, self.params = model, params
        self.source = resolve(model, **MODEL)

    def _load(self):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = self.params.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        tok = load(self.source, AutoTokenizer.from_pretrained, **MODEL)
        if not getattr(tok, "chat_template", None):
            raise fail("the tokenizer has no chat template", self.model,
                       "use an instruction-tuned model or set tokenizer.chat_template")
        tok.padding_side = "left"  # decoder-only batches pad on the left so answers start together
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        # dtype "auto": the dtype in the model's config (bf16 for most current LLMs), not fp32
        model = load(self.source, AutoModelForCausalLM.from_pretrained, dtype="auto", **MODEL).to(device).eval()
        return tok, model, device

    def prepare(self) -> None:
        """The model loads in `run`."""

    def run(self, jobs: Sequence[Job], emit: Emit) -> None:
        if not jobs:
            return
        tok, model, device = self._load()
        for batch in _chunks(list(jobs), self.params.concurrency):
            for job, result in zip(batch, self._generate(tok, model, device, batch)):
                emit(job, *result)

    def _generate(self, tok, model, device, batch: Sequence[Job]) -> list[tuple]:
        import torch

        texts = [tok.apply_chat_template(j.prompt.messages, tokenize=False, add_generation_prompt=True)
                 for j in batch]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        p = self.params
        # Greedy over scores that SeededSampling has turned into one sample per row: each image is
        # sampled at `temperature` from its own generator, so its text does not depend on the batch.
        sampler = [SeededSampling([j.seed for j in batch], p.temperature, device)] if p.temperature > 0 else []
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=p.max_tokens, min_new_tokens=1, do_sample=False,
                                 temperature=None, top_p=None, top_k=None, logits_processor=sampler,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        new = out[:, enc["input_ids"].shape[1]:]  # (B, generated) — the prompt is cut off
        return [self._result(tok, row, int(mask.sum()), p.max_tokens) for row, mask in
                zip(new.tolist(), enc["attention_mask"])]

    @staticmethod
    def _result(tok, row: list[int], prompt_tokens: int, max_tokens: int) -> tuple:
        eos = tok.eos_token_id
        n = row.index(eos) + 1 if eos in row else len([t for t in row if t != tok.pad_token_id])
        text = tok.decode(row[:n], skip_special_tokens=True).strip()
        if not text:
            return None, "the model returned no text"
        finish = "stop" if eos in row else "length"
        return Answer(text, finish, {"prompt_tokens": prompt_tokens, "completion_tokens": n}, max_tokens), None


class SeededSampling:
    """A logits processor that makes greedy decoding sample: each row's scores [V] become
    `scores / T + Gumbel noise` drawn from that row's own generator, whose argmax is a draw from
    softmax(scores / T) (the Gumbel-max trick). Row i draws one [V] vector per step from
    `torch.Generator().manual_seed(seeds[i])`, whatever the other rows are."""

    def __init__(self, seeds: Sequence[int], temperature: float, device):
        import torch

        self.temperature = float(temperature)
        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def __call__(self, input_ids, scores):   # scores [B, V]
        import torch

        u = torch.stack([torch.rand(scores.shape[-1], generator=g, device=scores.device, dtype=torch.float32)
                         for g in self.generators])                                  # [B, V] in [0, 1)
        tiny = torch.finfo(torch.float32).tiny
        gumbel = -torch.log(-torch.log(u.clamp(min=tiny, max=1 - 1e-7)))
        return scores.float() / self.temperature + gumbel
