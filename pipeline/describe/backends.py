"""The describe backends behind one interface, `backend.run(jobs, emit)` (see `types.py`), and the
registry that builds one by name. The registry imports the backends; they import only `types`.
"""
from __future__ import annotations

from typing import Sequence

from focusclip.core.errors import fail
from focusclip.pipeline.describe.types import Answer, Backend, Emit, GenParams, Job

BACKENDS = ("template", "openai", "vllm", "transformers")
# --concurrency when not given: requests in flight (openai), the generate() batch (transformers); vllm:
# None, vLLM's own max_num_seqs (it depends on the GPU: 1,024 on an H100 in vLLM 0.34)
DEFAULT_CONCURRENCY = {"template": 1, "openai": 8, "vllm": None, "transformers": 8}


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


def make_backend(name: str, model: str | None, base_url: str | None, params: GenParams,
                 revision: str | None = None) -> Backend:
    """The backend called `name`; a user error for an unknown name, a missing `--model`, or a
    `--revision` for a backend that loads no model."""
    if name not in BACKENDS:
        raise fail(f"unknown backend '{name}'", "--backend", f"use one of: {', '.join(BACKENDS)}")
    if revision and name not in ("vllm", "transformers"):
        raise fail(f"--revision pins a hub model, and --backend {name} loads none", "--revision",
                   "drop --revision, or use --backend vllm or transformers")
    if name == "template":
        return TemplateBackend(params)
    if not model:
        raise fail(f"--backend {name} needs a model", "--model",
                   "pass a model name (openai, vllm) or a local model directory (transformers, vllm)")
    if name == "openai":
        from focusclip.pipeline.describe.openai_api import OpenAIBackend

        return OpenAIBackend(model, base_url, params)
    from focusclip.pipeline.describe.local import TransformersBackend, VLLMBackend

    return (VLLMBackend if name == "vllm" else TransformersBackend)(model, params, revision)
