"""`focus-data filter descriptions/NAME.jsonl --annotations annotations.jsonl -o descriptions/NAME.kept.jsonl`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from focusclip.pipeline.commands.options import (GEN, Backend, BaseUrl, Concurrency, Device, KeepReasoning,
                                                 MaxRetries, MaxTokens, Model, Output, PromptId, Revision, Seed,
                                                 ServerWait, Temperature, Thinking, Timeout, TopP, WithCoords, given)
from focusclip.pipeline.filter.checks import CHECKS


def register(app: typer.Typer) -> None:
    @app.command("filter", help="Keep descriptions that are sound and agree with the keypoints; write "
                                "KEPT.jsonl, KEPT.rejected.jsonl (with reasons) and KEPT.report.json.")
    def filter(
        ctx: typer.Context,
        descriptions: Annotated[list[Path], typer.Argument(
            help="descriptions/NAME.jsonl from `focus-data describe`; several files or a quoted glob "
                 "('descriptions/NAME.shard-*.jsonl') are the shards of one run (--shard I/N), filtered together.")],
        annotations: Annotated[Path, typer.Option("--annotations", help="annotations.jsonl the descriptions "
                                                                        "were made from.")],
        output: Output,
        check: Annotated[Optional[list[str]], typer.Option(
            "--check", help=f"Run only this check (repeatable): {', '.join(CHECKS)}.")] = None,
        skip_check: Annotated[Optional[list[str]], typer.Option(
            "--skip-check", help="Do not run this check (repeatable).")] = None,
        set_: Annotated[Optional[list[str]], typer.Option(
            "--set", help="Threshold override KEY=VALUE (repeatable), e.g. --set max_words=400; "
                          "see FilterConfig.")] = None,
        allow_incomplete_shards: Annotated[bool, typer.Option(
            "--allow-incomplete-shards", metavar="", help="Filter shards that miss images or describe one twice (the report "
                                              "lists them); by default that is an error.")] = False,
        regenerate: Annotated[int, typer.Option(
            "--regenerate", help="Send rejected images back to describe for up to N rounds, with the describe "
                                 "options below.")] = 0,
        # describe's generation options (pipeline/commands/options.py); a round gets only those given here
        backend: Backend = None,
        model: Model = None,
        revision: Revision = None,
        base_url: BaseUrl = None,
        concurrency: Concurrency = None,
        seed: Seed = GEN.seed,
        temperature: Temperature = GEN.temperature,
        top_p: TopP = GEN.top_p,
        max_tokens: MaxTokens = GEN.max_tokens,
        thinking: Thinking = GEN.thinking,
        keep_reasoning: KeepReasoning = GEN.keep_reasoning,
        prompt_id: PromptId = None,
        with_coords: WithCoords = False,
        timeout_s: Timeout = GEN.timeout_s,
        max_retries: MaxRetries = GEN.max_retries,
        server_wait_s: ServerWait = GEN.server_wait_s,
        device: Device = GEN.device,
    ) -> None:
        from focusclip.pipeline.filter import config_with, run_filter
        from focusclip.pipeline.filter.records import regenerate_option_names

        names = regenerate_option_names()
        describe_options = {k: v for k, v in given(ctx).items() if k in names}
        report = run_filter(descriptions if len(descriptions) > 1 else descriptions[0], annotations, output,
                            config=config_with(set_ or ()), checks=check or None, skip_checks=skip_check or (),
                            regenerate=regenerate, describe_options=describe_options,
                            allow_incomplete_shards=allow_incomplete_shards)
        c = report.counts
        typer.echo(f"filter: {c.get('kept', 0)} kept, {c.get('rejected', 0)} rejected "
                   f"{json.dumps(report.extra['rejected_by_reason'])}, {sum(report.skipped.values())} skipped "
                   f"→ {output}", err=True)
