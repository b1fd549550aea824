"""The dataset card of a template-described config, built through the console scripts (describe →
filter → publish): it says the describer is rule-based and shows no prompt or sampling settings,
and the filter's statistics are a short table in words with the numbers of the filter report."""
from __future__ import annotations

import json
import re
import subprocess

from focusclip.data.records import write_annotations
from tests.conftest import console_script
from tests.pipeline.describe.test_describe import random_annotations


def _run(*args) -> None:
    r = subprocess.run([console_script("focus-data"), *map(str, args)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_template_card_is_rule_based_with_a_readable_filter_table(tmp_path):
    ann = tmp_path / "annotations.jsonl"
    write_annotations(ann, random_annotations(12))
    desc, kept = tmp_path / "template.jsonl", tmp_path / "template.kept.jsonl"
    _run("describe", ann, "-o", desc)
    _run("filter", desc, "--annotations", ann, "-o", kept)
    _run("publish", "--annotations", ann, "--descriptions", f"template={kept}", "-o", tmp_path / "pub")
    card = (tmp_path / "pub" / "README.md").read_text()
    report = json.loads((tmp_path / "template.kept.report.json").read_text())
    section = card.split("### `template`")[1].split("\n## ")[0]
    n = report["counts"]["descriptions"]
    assert f"- {n} rows written by the rule-based `template` describer" in section
    assert "Prompt `" not in section and "Sampling parameters" not in section and "```text" not in section
    table = re.findall(r"^\| (.+?) \| (.+?) \|$", section.split("Filter statistics (from the filter report):")[1], re.M)
    rows = {k: v for k, v in table if k not in ("statistic", "---")}   # past the header and the rule
    words = report["metrics"]["words"]
    assert rows["descriptions checked"] == str(n)
    assert rows["kept"] == f"{report['counts']['kept']} ({100 * report['counts']['kept'] / n:.1f} %)"
    assert rows["words per description"].startswith(f"mean {words['mean']:.4g}, median {words['median']:.4g}")
    assert rows["distinct words"] == str(report["metrics"]["vocabulary"])
    assert len(rows) <= 12 and not [k for k in rows if "." in k or "_" in k]   # words, not raw keys
