"""The types every describe backend shares: generation settings, a job, an answer, the emit callback.

A backend first checks what every job needs (`prepare`: the server is up and serves the model), then
answers every job it can and calls `emit(job, answer, None)` as each answer arrives (so the caller
appends it to the JSONL at once), or `emit(job, None, reason)` when it gave up on one. A problem that
dooms every job (a 401, an unknown model, a server gone for good) raises FocusError instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from focusclip.data.records import Annotation
from focusclip.prompts import Prompt


@dataclass(frozen=True)
class GenParams:
    """Generation and transport settings shared by the backends."""
    temperature: float = 0.5
    max_tokens: int = 512
    seed: int = 0
    # requests in flight (openai), max_num_seqs (vllm), batch size (transformers); None until run_describe
    # fills in the backend's default (backends.DEFAULT_CONCURRENCY)
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
    sent: dict | None = None                    # generation parameters as sent, when they differ from
                                                # {temperature, max_tokens} (reasoning models)


Emit = Callable[[Job, "Answer | None", "str | None"], None]


class Backend(Protocol):
    name: str

    def prepare(self) -> None:
        """Check, before any job, what every job needs (a server that is up and serves the model).
        Optional: the stage calls it when the backend has it."""

    def run(self, jobs: Sequence[Job], emit: Emit) -> None: ...
