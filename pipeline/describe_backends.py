"""The describe backends behind one interface: `backend.run(jobs, emit)`.

A backend answers every job it can and calls `emit(job, answer, None)` as each answer arrives (so the
caller appends it to the JSONL at once), or `emit(job, None, reason)` when it gave up on one. A
problem that dooms every job (a 401, an unknown model) raises FocusError instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from data.errors import fail
from data.records import Annotation
from prompts import Prompt

BACKENDS = ("template", "openai", "vllm", "transformers")


@dataclass(frozen=True)
class GenParams:
    """Generation and transport settings shared by the backends."""
    temperature: float = 0.5
    max_tokens: int = 512
    seed: int = 0
    concurrency: int = 8          # requests in flight (openai) or batch size (vllm, transformers)
    timeout_s: float = 120.0      # per HTTP request
    max_retries: int = 8          # per job, for retryable failures (429, 5xx, dropped, malformed)
    backoff_s: float = 1.0        # first retry wait; doubles per attempt, capped at max_backoff_s
    max_backoff_s: float = 60.0
    length_retries: int = 2       # finish_reason "length": ask again with twice the tokens, this often
    device: str = "auto"          # transformers: auto, cpu or cuda


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


Emit = Callable[[Job, "Answer | None", "str | None"], None]


class Backend(Protocol):
    name: str

    def run(self, jobs: Sequence[Job], emit: Emit) -> None: ...


class TemplateBackend:
    """Offline, deterministic: verbalizes the pose facts (pipeline/describe_template.py)."""
    name = "template"

    def __init__(self, params: GenParams):
        self.params = params

    def run(self, jobs: Sequence[Job], emit: Emit) -> None:
        from pipeline.describe_template import template_description

        for job in jobs:
            emit(job, Answer(template_description(job.annotation, job.seed), "stop", {}), None)


def make_backend(name: str, model: str | None, base_url: str | None, params: GenParams) -> Backend:
    """The backend called `name`; a user error for an unknown name or a missing `--model`."""
    if name not in BACKENDS:
        raise fail(f"unknown backend '{name}'", "--backend", f"use one of: {', '.join(BACKENDS)}")
    if name == "template":
        return TemplateBackend(params)
    if not model:
        raise fail(f"--backend {name} needs a model", "--model",
                   "pass a model name (openai, vllm) or a local model directory (transformers, vllm)")
    if name == "openai":
        from pipeline.describe_openai import OpenAIBackend

        return OpenAIBackend(model, base_url, params)
    from pipeline.describe_local import TransformersBackend, VLLMBackend

    return VLLMBackend(model, params) if name == "vllm" else TransformersBackend(model, params)
