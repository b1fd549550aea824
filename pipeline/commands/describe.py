"""`focus-data describe annotations.jsonl -o descriptions/NAME.jsonl [--backend …]`."""
from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from focusclip.pipeline.commands.options import (GEN, Backend, BackendName, BaseUrl, Concurrency, Device, Force,
                                                 ImageMaxSide, Images, ImageUrl, ImageUrlKind, KeepReasoning,
                                                 Limit, Mark, MarkName, MaxRetries, MaxTokens, Model, Output,
                                                 PromptFile, PromptId, Revision, Seed, ServerWait, Shard, Split,
                                                 Structured, Temperature, Thinking, Timeout, TopP, WithCoords, plain)
from focusclip.prompts import DEFAULT_PROMPT
from focusclip.prompts.picture import DEFAULT_MARK, DEFAULT_MAX_SIDE


class DType(str, Enum):
    """vLLM's weight and activation dtype; auto is the model's own (config.json torch_dtype)."""
    auto = "auto"
    bfloat16 = "bfloat16"
    float16 = "float16"
    float32 = "float32"


def register(app: typer.Typer) -> None:
    @app.command("describe", help="Describe each image's poses with the template describer or an LLM; "
                                  "appends to a resumable JSONL (one record per image).")
    def describe(
        ctx: typer.Context,
        annotations: Annotated[Path, typer.Argument(help="annotations.jsonl from `focus-data convert`.")],
        output: Output,
        backend: Backend = BackendName.template,
        model: Model = None,
        revision: Revision = None,
        base_url: BaseUrl = None,
        concurrency: Concurrency = None,
        split: Annotated[Optional[Split], typer.Option(help="Only this split.")] = None,
        limit: Limit = None,
        shard: Shard = None,
        seed: Seed = GEN.seed,
        temperature: Temperature = GEN.temperature,
        top_p: TopP = GEN.top_p,
        max_tokens: MaxTokens = GEN.max_tokens,
        thinking: Thinking = GEN.thinking,
        keep_reasoning: KeepReasoning = GEN.keep_reasoning,
        structured: Structured = GEN.structured,
        prompt_id: PromptId = DEFAULT_PROMPT,
        prompt_file: PromptFile = None,
        images: Images = None,
        image_max_side: ImageMaxSide = DEFAULT_MAX_SIDE,
        mark: Mark = MarkName(DEFAULT_MARK),
        image_url: ImageUrl = ImageUrlKind.data,
        describer: Annotated[Optional[str], typer.Option(help="Describer name in the records (default: "
                                                              "'template' or the model name).")] = None,
        with_coords: WithCoords = False,
        timeout_s: Timeout = GEN.timeout_s,
        max_retries: MaxRetries = GEN.max_retries,
        server_wait_s: ServerWait = GEN.server_wait_s,
        max_model_len: Annotated[Optional[int], typer.Option(
            "--max-model-len", min=1, help="Context length (vllm; default: the model's own).")] = None,
        tensor_parallel_size: Annotated[int, typer.Option(
            "--tensor-parallel-size", min=1, help="GPUs the model is split over (vllm).")]
        = GEN.tensor_parallel_size,
        dtype: Annotated[DType, typer.Option(
            "--dtype", help="Weights and activations (vllm; auto: the model's own).")] = DType.auto,
        device: Device = GEN.device,
        force: Force = False,
    ) -> None:
        from focusclip.pipeline.describe import DescribeOptions, run_describe

        report = run_describe(DescribeOptions.from_flat(**plain(ctx.params)))   # parameters named as the fields
        summary = {k: report.counts.get(k, 0) for k in ("images", "asked", "described", "already_described",
                                                        "failed", "refused")}
        typer.echo(f"describe: {json.dumps(summary)} → {output}", err=True)
        if report.counts.get("failed", 0):
            typer.echo("some images failed (see the report); rerun the same command to retry them", err=True)
        if report.counts.get("refused", 0):
            typer.echo("the model refused some conversations (too long or invalid; see the report's failures): "
                       "a rerun asks again and is refused again", err=True)
