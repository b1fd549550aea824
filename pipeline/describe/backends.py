"""The describe backends behind one interface, `backend.run(jobs, emit)` (see `types.py`), and the
registry that builds one by name. The registry imports the backends; they import only `types`.
"""
from __future__ import annotations

from typing import Sequence

from focusclip.core.errors import fail
from focusclip.pipeline.describe.types import Answer, Backend, Emit, GenParams, Job

BACKENDS = ("template", "openai", "vllm", "transformers")
# --concurrency when not given: requests in flight (openai), sequences vLLM schedules at once
# (its own default), the generate() batch (transformers)
DEFAULT_CONCURRENCY = {"template": 1, "openai": 8, "vllm": 256, "transformers": 8}


class TemplateBackend:
    """Offline, deterministic: verbalizes the pose facts (`template.py`)."""
    name = "template"

    def __init__(self, params: GenParams):
        self.params = params

    def prepare(self) -> None:
        """Needs nothing."""

    def run(self, jobs: Sequence[Job], emit: Emit) -> None:
        from focusclip.pipeline.describe.template import template_description

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
        from focusclip.pipeline.describe.openai_api import OpenAIBackend

        return OpenAIBackend(model, base_url, params)
    from focusclip.pipeline.describe.local import TransformersBackend, VLLMBackend

    return VLLMBackend(model, params) if name == "vllm" else TransformersBackend(model, params)
