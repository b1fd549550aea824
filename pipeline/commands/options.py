"""Option types shared by several `focus-data` commands, defined once; the name lists behind the
choices come from the library module that owns them."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from focusclip.cli import Device, Force, SetOpt, Version
from focusclip.data.records import SPLITS
from focusclip.pipeline.describe.backends import BACKENDS, DEFAULT_CONCURRENCY
from focusclip.pipeline.describe.types import GenParams
from focusclip.prompts import DEFAULT_PROMPT
from focusclip.prompts.picture import MARKS, URL_KINDS

__all__ = ["GEN", "Backend", "BackendName", "BaseUrl", "Concurrency", "Device", "Force", "ImageMaxSide", "ImageUrl",
           "ImageUrlKind", "Images", "KeepReasoning", "Limit", "Mark", "MarkName", "MaxRetries", "MaxTokens", "Model",
           "Output", "PromptFile", "PromptId", "Revision", "Seed", "ServerWait", "SetOpt", "Shard", "Split",
           "Structured", "Temperature", "Thinking", "Timeout", "TopP", "Version", "WithCoords", "given", "plain"]

BackendName = Enum("BackendName", {n: n for n in BACKENDS}, type=str)   # describe backends
Split = Enum("Split", {n: n for n in SPLITS}, type=str)                 # annotation splits (docs/design.md §3.1)
MarkName = Enum("MarkName", {n: n for n in MARKS}, type=str)            # prompts/picture.py
ImageUrlKind = Enum("ImageUrlKind", {n: n for n in URL_KINDS}, type=str)

Shard = Annotated[Optional[str], typer.Option("--shard", help="Process shard I of N (e.g. 0/4).")]
Output = Annotated[Path, typer.Option("-o", "--output", help="Output path.")]
Limit = Annotated[Optional[int], typer.Option("--limit", min=1, help="Process at most N items.")]

# The generation options of `describe`, which `filter --regenerate` passes on to it. Their defaults are
# describe's (GEN); `filter` passes on only the ones given on its command line (`given`), so a round
# keeps the rejected records' own backend and prompt unless told otherwise.
GEN = GenParams()
Backend = Annotated[Optional[BackendName], typer.Option(
    "--backend", show_default=False,
    help="template (offline), or an LLM: openai (any OpenAI-compatible server), vllm (in-process) or "
         "transformers. Default: template (filter --regenerate: the rejected records' own).")]
Model = Annotated[Optional[str], typer.Option(
    "--model", help="Model name (openai); hub id (downloaded and cached) or save_pretrained folder (vllm, "
                    "transformers).")]
BaseUrl = Annotated[Optional[str], typer.Option(
    "--base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1.")]
Revision = Annotated[Optional[str], typer.Option(
    "--revision", help="Hub branch, tag or commit of --model (vllm, transformers; default: the main branch).")]
Concurrency = Annotated[Optional[int], typer.Option(
    "--concurrency", help=f"Requests in flight (openai, default {DEFAULT_CONCURRENCY['openai']}); sequences "
                          f"scheduled at once, vLLM's max_num_seqs (vllm, default: vLLM's own for the GPU); "
                          f"batch size (transformers, default {DEFAULT_CONCURRENCY['transformers']}).")]
Seed = Annotated[int, typer.Option(
    "--seed", help="Run seed: each image samples with a seed drawn from (seed, image, round), recorded in its "
                   "record (also picks the template's phrasing).")]
Temperature = Annotated[Optional[float], typer.Option(
    "--temperature", show_default=False, help="Sampling temperature (0: greedy). Default: the model's own "
                                              "(generation_config; 1.0 when it sets none).")]
TopP = Annotated[Optional[float], typer.Option(
    "--top-p", show_default=False, help="Nucleus sampling mass in (0, 1]. Default: the model's own (1.0 when it "
                                        "sets none).")]
Thinking = Annotated[bool, typer.Option(
    "--thinking", metavar="", help="Let reasoning models think (by default their chat template is told enable_thinking="
                       "false); a <think> block is removed from the stored text either way.")]
KeepReasoning = Annotated[bool, typer.Option(
    "--keep-reasoning", metavar="", help="Keep a removed <think> block's text in the record's `reasoning` field.")]
Structured = Annotated[bool, typer.Option(
    "--structured", metavar="", help="Answer as JSON (per person posture and arm states, then the prose): a JSON "
                                     "schema as response_format (openai) or structured_outputs (vllm); the record "
                                     "keeps the people in `structured`, the filter checks them.")]
MaxTokens = Annotated[int, typer.Option(
    "--max-tokens", help="Answer token limit (doubled up to twice on finish_reason 'length').")]
PromptId = Annotated[Optional[str], typer.Option(
    "--prompt", show_default=False,
    help=f"Prompt template id in prompts/templates. Default: {DEFAULT_PROMPT} (filter --regenerate: the "
         f"rejected records' own).")]
PromptFile = Annotated[Optional[Path], typer.Option(
    "--prompt-file", help="Your own prompt: a system template, a line '----- user -----', a user template "
                          "(docs/describe.md); replaces --prompt, and its file name is the records' prompt_id.")]
Images = Annotated[Optional[Path], typer.Option(
    "--images", help="Folder of the annotated photos, for a prompt that shows them to the model (pose-vlm-v1).")]
ImageMaxSide = Annotated[int, typer.Option(
    "--image-max-side", min=28, help="Long side, in pixels, of the picture sent to the model (smaller photos are "
                                     "sent as they are).")]
Mark = Annotated[MarkName, typer.Option(
    "--mark", help="How the annotated people are marked on the picture sent to the model (never on the "
                   "dataset's images): a numbered box, a number at the head, the skeleton, or none.")]
ImageUrl = Annotated[ImageUrlKind, typer.Option(
    "--image-url", help="data: a JPEG data URL in the request; file: a file:// URL of the marked copy (a server "
                        "on this machine allowed to read local media, e.g. vllm serve --allowed-local-media-path).")]
WithCoords = Annotated[bool, typer.Option("--with-coords", metavar="", help="Also give the LLM raw keypoint coordinates.")]
Timeout = Annotated[float, typer.Option("--timeout", help="Seconds per HTTP request (openai).")]
MaxRetries = Annotated[int, typer.Option(
    "--max-retries", help="Retries per image for 429/5xx/dropped/malformed answers (openai).")]
ServerWait = Annotated[float, typer.Option(
    "--server-wait", help="Seconds to wait for the server's /v1/models before the first request (openai; a "
                          "vllm serve started just before needs minutes to load).")]


def plain(params: dict) -> dict:
    """Click's parsed parameters with enum members as their values (the library takes strings)."""
    return {k: v.value if isinstance(v, Enum) else v for k, v in params.items()}


def given(ctx: typer.Context) -> dict:
    """The parameters given on the command line (not left at their default), as plain values."""
    # By the source's name: newer Typer releases carry their own copy of click (another ParameterSource class)
    sources = {k: ctx.get_parameter_source(k) for k in ctx.params}
    return {k: v for k, v in plain(ctx.params).items() if sources[k] is not None and sources[k].name != "DEFAULT"}
