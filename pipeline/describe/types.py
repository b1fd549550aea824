"""The types every describe backend shares: generation settings, a job, an answer, the emit callback.

A backend first checks what every job needs (`prepare`: the server is up and serves the model), then
answers every job it can and calls `emit(job, answer, None)` as each answer arrives (so the caller
appends it to the JSONL at once), or `emit(job, None, reason)` when it gave up on one (a `Refusal`
when the model cannot run that conversation at all, so a rerun would fail the same way). A problem that
dooms every job (a 401, an unknown model, a server gone for good) raises FocusError instead.

Every image is sampled with its own seed, `job_seed(run seed, image, round)`, and every backend starts
from the model's own generation defaults and overrides only what the user set (docs/describe.md).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from focusclip.data.records import Annotation
from focusclip.prompts import Prompt


@dataclass(frozen=True)
class GenParams:
    """Generation and transport settings shared by the backends."""
    temperature: float | None = None   # None: the model's own (generation_config; 1.0 when it sets none)
    top_p: float | None = None         # None: the model's own (1.0 when it sets none)
    max_tokens: int = 512
    seed: int = 0                      # the run's seed; each image samples with job_seed(seed, image, round)
    thinking: bool = False             # let reasoning models think (chat templates with enable_thinking)
    keep_reasoning: bool = False       # keep a <think> block's text in the record's `reasoning` field
    structured: bool = False           # a JSON answer per structured.SCHEMA (response_format, structured_outputs)
    # requests in flight (openai), max_num_seqs (vllm), batch size (transformers); None until run_describe
    # fills in the backend's default (backends.DEFAULT_CONCURRENCY; for vllm None stays: vLLM's own)
    concurrency: int | None = None
    timeout_s: float = 120.0      # per HTTP request
    max_retries: int = 8          # per job, for retryable failures (429, 5xx, dropped, malformed)
    backoff_s: float = 1.0        # first retry wait; doubles per attempt, capped at max_backoff_s
    max_backoff_s: float = 60.0
    length_retries: int = 2       # finish_reason "length": ask again with twice the tokens, this often
    device: str = "auto"          # transformers: auto, cpu or cuda
    server_wait_s: float = 600.0  # openai: how long to wait for the server's /v1/models before the first job
    connection_failures: int = 0  # openai: stop the run after this many in a row (0: max(16, 2 × concurrency))
    max_model_len: int | None = None   # vllm: context length (None: the model's own)
    tensor_parallel_size: int = 1      # vllm: GPUs one model is split over
    dtype: str = "auto"                # vllm: auto (the model's own), bfloat16, float16, float32

    @property
    def max_connection_failures(self) -> int:
        return self.connection_failures or max(16, 2 * self.concurrency)

    def overrides(self) -> dict:
        """The sampling settings the user set, which replace the model's own."""
        return {k: v for k, v in (("temperature", self.temperature), ("top_p", self.top_p)) if v is not None}


SEED_BITS = 63   # vLLM and `vllm serve` take any int64 seed, torch.Generator any 64-bit one; OpenAI names no bound


def job_seed(seed: int, image: str, round_: int) -> int:
    """The sampling seed of one image in one round: stable across runs and batches, different per image
    (images sampled with one seed would share their noise in every backend) and per regeneration round."""
    digest = hashlib.sha256(f"{seed}:{image}:{round_}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << SEED_BITS) - 1)


@dataclass(frozen=True)
class Job:
    """One image to describe: its annotation, the filled prompt and the sampling seed."""
    annotation: Annotation
    prompt: Prompt
    seed: int

    @property
    def image(self) -> str:
        return self.annotation.image


@dataclass(frozen=True)
class Answer:
    text: str
    finish_reason: str | None = "stop"
    usage: dict = field(default_factory=dict)   # prompt_tokens, completion_tokens
    max_tokens: int | None = None               # the limit that produced it (after length retries)
    sampling: dict = field(default_factory=dict)  # the effective sampling settings, for the record's params
    reasoning: str | None = None                # reasoning the server returned apart (reasoning_content)


class Refusal(str):
    """Why the model cannot run a conversation at all (longer than its context, invalid): the image is
    skipped with this reason, and a rerun would fail the same way."""


Emit = Callable[[Job, "Answer | None", "str | None"], None]

# A reasoning block: <think>…</think>, or …</think> when the chat template opened it in the prompt
_THINK = re.compile(r"^\s*(?:<think>)?(.*?)</think>\s*", re.DOTALL)


def split_reasoning(text: str) -> tuple[str, str | None]:
    """(the answer, the reasoning before it or None). An unclosed <think> is left in the answer (the model
    ran out of tokens while thinking): the filter's `reasoning` check rejects it."""
    m = _THINK.match(text)
    if not m:
        return text, None
    return text[m.end():].strip(), m.group(1).strip()


class Backend(Protocol):
    name: str

    def prepare(self) -> None:
        """Check, before any job, what every job needs (a server that is up and serves the model).
        Optional: the stage calls it when the backend has it."""

    def run(self, jobs: Sequence[Job], emit: Emit) -> None: ...
