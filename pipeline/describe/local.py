"""Local-model backends: `vllm` (offline batched `LLM.chat`) and `transformers` (a model with a chat
template, batched `generate`). Both import their library only when they run. `--model` is a hub id
(downloaded and cached the way transformers does: HF_HUB_OFFLINE, HF_ENDPOINT, HF_TOKEN for gated
models; `--revision` pins a branch, tag or commit) or a save_pretrained folder; `focusclip.core.hub`
checks it before any work starts.

One sampling policy (docs/describe.md, "Sampling"): start from the model's own generation defaults
(vLLM: `LLM.get_default_sampling_params()`, which reads generation_config.json; transformers: the
model's `generation_config`, read the same way) and override only what the user set (`--temperature`,
`--top-p`); `--max-tokens` always applies. Each image samples with its own seed (`Job.seed`): vLLM
takes one per request; for transformers, `SeededSampling` draws each row's token from its own
`torch.Generator`. Reasoning is off unless `--thinking` (`enable_thinking=False` to the chat template).
"""
from __future__ import annotations

import gc
import importlib.util
from pathlib import Path
from typing import Sequence

from focusclip.core.errors import fail
from focusclip.core.hub import Source, load, resolve
from focusclip.pipeline.describe.structured import SCHEMA
from focusclip.pipeline.describe.types import Answer, Emit, GenParams, Job, Refusal

MODEL = dict(what="describer model", key="--model")

# Conversations per LLM.chat call: this many times the sequences the engine runs at once, so the batch
# stays full for all but the last of them, and answers are written after each call.
CHUNK_ROUNDS = 4
# The sampling settings every record lists, and their values for a model whose generation_config sets
# none (vLLM's defaults; transformers' own global default top_k=50 is not used: 0 is off in both)
SAMPLING_KEYS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")
NEUTRAL = {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0}
_VLLM_PENALTIES = ("presence_penalty", "frequency_penalty")   # vLLM only; recorded when not 0


def _chunks(items: Sequence, n: int):
    for i in range(0, len(items), max(1, n)):
        yield items[i:i + n]


def thinking_kwargs(params: GenParams) -> dict:
    """Chat template variables: reasoning off (Qwen3 and other templates with `enable_thinking`) unless
    --thinking. Templates without the variable ignore it."""
    return {} if params.thinking else {"enable_thinking": False}


def import_vllm():
    try:
        import vllm
    except ImportError:
        raise _no_vllm() from None
    return vllm


def _no_vllm():
    return fail("the vllm backend needs vllm, which is not installed", "--backend vllm",
                "pip install focusclip[vllm]")


def _refusals() -> tuple[type, ...]:
    """What `LLM.chat` raises for a conversation it cannot run, before generating anything: vLLM 0.34's
    VLLMClientError (VLLMValidationError "This model's maximum context length is …",
    ChatTemplateResolutionError); a ValueError in earlier releases (0.20: "The decoder prompt (length …)
    is longer than the maximum model length of …", VLLMValidationError(ValueError))."""
    try:
        from vllm.exceptions import VLLMClientError
    except ImportError:
        return (ValueError,)
    return (ValueError, VLLMClientError)


class _Engines:
    """One vLLM engine per process, kept across runs so the filter's regeneration rounds reuse it:
    vLLM holds the GPU until its `LLM` is collected, and a second engine beside a live one runs out of
    memory. Asked for other engine arguments, it drops the old engine before building the new one."""

    def __init__(self):
        self.key, self.llm = None, None

    def get(self, vllm, args: dict):
        key = (vllm, tuple(sorted(args.items())))
        if self.key is None or self.key[0] is not vllm or self.key[1] != key[1]:
            self.key = self.llm = None
            gc.collect()
            self.llm, self.key = vllm.LLM(**args), key
        return self.llm


ENGINES = _Engines()


def vllm_engine_args(model: str, params: GenParams, revision: str | None = None) -> dict:
    """Keyword arguments for `vllm.LLM`: `max_num_seqs` only when --concurrency is given (vLLM's own
    default fits the GPU: 1,024 on an H100); the context length, parallelism, dtype and revision are the
    user's. No engine seed: every request carries its own."""
    args = {"model": model, "tensor_parallel_size": params.tensor_parallel_size, "dtype": params.dtype}
    if params.concurrency is not None:
        args["max_num_seqs"] = params.concurrency
    if params.max_model_len is not None:
        args["max_model_len"] = params.max_model_len
    if revision:
        args["revision"] = revision
    return args


def vllm_media_args(jobs: Sequence[Job]) -> dict:
    """Engine arguments for prompts that show the photo: one image per prompt (`limit_mm_per_prompt`;
    vLLM's default for a VLM may be more, reserving memory for images never sent) and, for file://
    URLs, the folder of the marked copies vLLM may read (`allowed_local_media_path`)."""
    pictures = [job.prompt.picture for job in jobs if job.prompt.picture is not None]
    if not pictures:
        return {}
    args = {"limit_mm_per_prompt": {"image": 1}}
    spec = pictures[0].spec
    if spec.url == "file":
        args["allowed_local_media_path"] = str(Path(spec.copies).resolve())
    return args


def vllm_sampling(defaults, params: GenParams) -> dict:
    """The effective sampling settings: the engine's defaults (a `SamplingParams` from
    `LLM.get_default_sampling_params()`: the model's generation_config) with the user's overrides."""
    own = {k: getattr(defaults, k) for k in SAMPLING_KEYS + _VLLM_PENALTIES}
    own["top_k"] = max(0, own["top_k"] or 0)    # older releases spell "off" -1
    return {**own, **params.overrides()}


def vllm_requests(jobs: Sequence[Job], sampling: dict, max_tokens: int) -> tuple[list[list[dict]], list[dict]]:
    """The conversations and the per-request `SamplingParams` keyword arguments for `LLM.chat`."""
    return ([job.prompt.messages for job in jobs],
            [{**sampling, "max_tokens": max_tokens, "seed": job.seed} for job in jobs])


def recorded(sampling: dict) -> dict:
    """What a record's params list of the settings: the shared keys, and other penalties when set."""
    return {k: v for k, v in sampling.items() if k in SAMPLING_KEYS or v}


class VLLMBackend:
    name = "vllm"

    def __init__(self, model: str, params: GenParams, revision: str | None = None):
        if importlib.util.find_spec("vllm") is None:  # say so before any work starts
            raise _no_vllm()
        self.model, self.params = model, params
        self.source = resolve(model, revision, **MODEL)   # a missing folder, an unknown id or revision, …

    def prepare(self) -> None:
        """The model loads in `run` (vLLM reports its own loading)."""

    def run(self, jobs: Sequence[Job], emit: Emit) -> None:
        if not jobs:
            return
        vllm = import_vllm()
        model, revision = _vllm_model(self.source)
        llm = ENGINES.get(vllm, {**vllm_engine_args(model, self.params, revision), **vllm_media_args(jobs)})
        sampling = vllm_sampling(llm.get_default_sampling_params(), self.params)
        seqs = llm.llm_engine.vllm_config.scheduler_config.max_num_seqs   # the given one, or vLLM's default
        for chunk in _chunks(list(jobs), CHUNK_ROUNDS * seqs):
            self._chat(llm, vllm, chunk, sampling, emit)

    def _chat(self, llm, vllm, jobs: Sequence[Job], sampling: dict, emit: Emit) -> None:
        """One `LLM.chat` call. vLLM refuses the whole call when one conversation cannot run (it aborts
        the requests already added, before generating), so a refused call is split in two and each half
        asked again: the conversation at fault ends up alone and is refused with vLLM's reason."""
        conversations, requests = vllm_requests(jobs, sampling, self.params.max_tokens)
        if self.params.structured:   # vLLM's structured outputs (0.11 on): the answer follows the JSON schema
            from vllm.sampling_params import StructuredOutputsParams

            requests = [{**kw, "structured_outputs": StructuredOutputsParams(json=SCHEMA)} for kw in requests]
        sampling_params = [vllm.SamplingParams(**kw) for kw in requests]
        try:
            outputs = llm.chat(conversations, sampling_params, use_tqdm=False,
                               chat_template_kwargs=thinking_kwargs(self.params))
        except _refusals() as e:
            if len(jobs) == 1:
                emit(jobs[0], None, Refusal(f"vLLM: {e}"))
                return
            half = len(jobs) // 2
            self._chat(llm, vllm, jobs[:half], sampling, emit)
            self._chat(llm, vllm, jobs[half:], sampling, emit)
            return
        assert len(outputs) == len(jobs), f"LLM.chat gave {len(outputs)} outputs for {len(jobs)} conversations"
        for job, out in zip(jobs, outputs):
            emit(job, *vllm_answer(out, self.params.max_tokens, recorded(sampling)))


def _vllm_model(source: Source) -> tuple[str, str | None]:
    """What vLLM loads and at which revision: the folder; the hub id at the commit the check resolved
    (so tokenizer and weights come from one snapshot; vLLM downloads it through huggingface_hub); or,
    when the hub cannot be asked (offline, unreachable), the cached snapshot's folder."""
    if source.kind == "hub" and source.local_only:
        from huggingface_hub import snapshot_download

        return snapshot_download(source.name, revision=source.commit, local_files_only=True), None
    if source.kind == "hub":
        return source.name, source.commit or source.revision
    return source.name, None


def vllm_answer(out, max_tokens: int, sampling: dict | None = None) -> tuple[Answer | None, str | None]:
    """A vllm RequestOutput to (answer, None), or (None, reason) when it holds no text."""
    completion = out.outputs[0] if getattr(out, "outputs", None) else None
    text = (completion.text if completion else "").strip()
    if not text:
        return None, "the model returned no text"
    usage = {"prompt_tokens": len(out.prompt_token_ids or []), "completion_tokens": len(completion.token_ids)}
    return Answer(text, completion.finish_reason, usage, max_tokens, dict(sampling or {})), None


def transformers_sampling(generation_config, params: GenParams) -> dict:
    """The effective sampling settings: the model's generation_config (what it sets of SAMPLING_KEYS;
    `do_sample` is not read, as vLLM does not) over NEUTRAL, with the user's overrides."""
    own = {k: getattr(generation_config, k, None) for k in SAMPLING_KEYS}
    return {**NEUTRAL, **{k: v for k, v in own.items() if v is not None}, **params.overrides()}


def stop_token_ids(generation_config, tok) -> list[int]:
    """Every token that ends an answer: the model's generation_config eos list (an end-of-turn token such
    as <|im_end|> or <|eot_id|> besides the tokenizer's eos), and the tokenizer's eos, as vLLM stops."""
    ids = generation_config.eos_token_id
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if tok.eos_token_id is not None and tok.eos_token_id not in ids:
        ids.append(tok.eos_token_id)
    return ids


class TransformersBackend:
    """A Hugging Face causal LM (hub id or folder), in the dtype it was saved in; `concurrency` is
    the batch size."""
    name = "transformers"

    def __init__(self, model: str, params: GenParams, revision: str | None = None):
        self.model, self.params = model, params
        self.source = resolve(model, revision, **MODEL)

    def _processor(self):
        """The processor of an image-text-to-text model (for prompts that show the photo)."""
        from transformers import AutoProcessor

        processor = load(self.source, AutoProcessor.from_pretrained, **MODEL)
        if not getattr(processor, "chat_template", None) or not hasattr(processor, "tokenizer"):
            raise fail("the model has no processor with a chat template", self.model,
                       "use an instruction-tuned vision-language model (its processor's chat_template)")
        return processor

    def _load(self, processor=None):
        """(tokenizer, model, device): a causal LM, or with `processor` an image-text-to-text model and
        the processor's tokenizer."""
        import torch
        from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

        vision = processor is not None
        device = self.params.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        tok = processor.tokenizer if vision else load(self.source, AutoTokenizer.from_pretrained, **MODEL)
        if not vision and not getattr(tok, "chat_template", None):
            raise fail("the tokenizer has no chat template", self.model,
                       "use an instruction-tuned model or set tokenizer.chat_template")
        tok.padding_side = "left"  # decoder-only batches pad on the left so answers start together
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        # dtype "auto": the dtype in the model's config (bf16 for most current LLMs), not fp32
        auto = AutoModelForImageTextToText if vision else AutoModelForCausalLM
        model = load(self.source, auto.from_pretrained, dtype="auto", **MODEL).to(device).eval()
        return tok, model, device

    def prepare(self) -> None:
        """The model loads in `run`."""

    def run(self, jobs: Sequence[Job], emit: Emit) -> None:
        if not jobs:
            return
        processor = self._processor() if any(j.prompt.picture is not None for j in jobs) else None
        tok, model, device = self._load(processor)
        sampling = transformers_sampling(model.generation_config, self.params)
        stop = stop_token_ids(model.generation_config, tok)
        for batch in _chunks(list(jobs), self.params.concurrency):
            for job, result in zip(batch, self._generate(tok, model, device, batch, sampling, stop, processor)):
                emit(job, *result)

    def _encode(self, tok, batch: Sequence[Job], processor):
        """The batch's chat-template texts, tokenized; with a processor, the pictures go in as PIL images
        where each prompt's image part was (the processor expands its image token)."""
        if processor is None:
            texts = [tok.apply_chat_template(j.prompt.messages, tokenize=False, add_generation_prompt=True,
                                             **thinking_kwargs(self.params)) for j in batch]
            return tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        convs = [[{"role": "system", "content": [{"type": "text", "text": j.prompt.system}]},
                  {"role": "user", "content": j.prompt.user_content({"type": "image"})}] for j in batch]
        texts = [processor.apply_chat_template(c, tokenize=False, add_generation_prompt=True,
                                               **thinking_kwargs(self.params)) for c in convs]
        return processor(text=texts, images=[j.prompt.picture.pil() for j in batch], return_tensors="pt",
                         padding=True, add_special_tokens=False)

    def _generate(self, tok, model, device, batch: Sequence[Job], sampling: dict, stop: list[int],
                  processor=None) -> list[tuple]:
        import torch

        enc = self._encode(tok, batch, processor).to(device)
        p = self.params
        # Greedy over scores that sampling_processors have turned into one sample per row: each image is
        # sampled from its own generator, so its text does not depend on the batch. The model's other
        # logits processors (a repetition penalty) run first, as in transformers' own sampling.
        processors = sampling_processors(sampling, [j.seed for j in batch], device) \
            if sampling["temperature"] > 0 else []
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=p.max_tokens, min_new_tokens=1, do_sample=False,
                                 temperature=None, top_p=None, top_k=None, min_p=None, logits_processor=processors,
                                 pad_token_id=tok.pad_token_id, eos_token_id=stop)
        new = out[:, enc["input_ids"].shape[1]:]  # (B, generated) — the prompt is cut off
        results = [_result(tok, row, int(mask.sum()), p.max_tokens, set(stop), sampling)
                   for row, mask in zip(new.tolist(), enc["attention_mask"])]
        image_token = getattr(model.config, "image_token_id", None) if processor is not None else None
        if image_token is not None:   # the picture's cost, as the processor expanded it
            for (answer, _), row in zip(results, enc["input_ids"]):
                if answer is not None:
                    answer.usage["image_tokens"] = int((row == image_token).sum())
        return results


def _result(tok, row: list[int], prompt_tokens: int, max_tokens: int, stop: set[int], sampling: dict) -> tuple:
    """One generated row to (answer, None) or (None, reason): cut at the first stop token, which is not
    part of the text; without one the answer ran out of tokens."""
    end = next((i for i, t in enumerate(row) if t in stop), None)
    n = end + 1 if end is not None else len([t for t in row if t != tok.pad_token_id])
    text = tok.decode(row[:end if end is not None else n], skip_special_tokens=True).strip()
    if not text:
        return None, "the model returned no text"
    finish = "stop" if end is not None else "length"
    return Answer(text, finish, {"prompt_tokens": prompt_tokens, "completion_tokens": n}, max_tokens,
                  dict(sampling)), None


def sampling_processors(sampling: dict, seeds: Sequence[int], device) -> list:
    """transformers' own warpers for the settings, in its sampling order (temperature, top-k, top-p,
    min-p), then `SeededSampling`: greedy decoding over their output samples from the warped distribution."""
    from transformers.generation.logits_process import (MinPLogitsWarper, TemperatureLogitsWarper,
                                                        TopKLogitsWarper, TopPLogitsWarper)

    out = [TemperatureLogitsWarper(sampling["temperature"])] if sampling["temperature"] != 1.0 else []
    if sampling["top_k"]:
        out.append(TopKLogitsWarper(sampling["top_k"]))
    if sampling["top_p"] < 1.0:
        out.append(TopPLogitsWarper(sampling["top_p"]))
    if sampling["min_p"]:
        out.append(MinPLogitsWarper(sampling["min_p"]))
    return out + [SeededSampling(seeds, device)]


class SeededSampling:
    """A logits processor that makes greedy decoding sample: each row's (warped) scores [V] plus Gumbel
    noise drawn from that row's own generator, whose argmax is a draw from softmax(scores) (the
    Gumbel-max trick; tokens the warpers removed stay at -inf). Row i draws one [V] vector per step from
    `torch.Generator().manual_seed(seeds[i])`, whatever the other rows are."""

    def __init__(self, seeds: Sequence[int], device):
        import torch

        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def __call__(self, input_ids, scores):   # scores [B, V]
        import torch

        u = torch.stack([torch.rand(scores.shape[-1], generator=g, device=scores.device, dtype=torch.float32)
                         for g in self.generators])                                  # [B, V] in [0, 1)
        tiny = torch.finfo(torch.float32).tiny
        gumbel = -torch.log(-torch.log(u.clamp(min=tiny, max=1 - 1e-7)))
        return scores.float() + gumbel
