"""The card's "Sampling parameters" count rows sampled alike together: every image has its own seed
(docs/describe.md), which the card leaves out."""
from __future__ import annotations

import json

from focusclip.pipeline.publish.card import ConfigSummary


def test_rows_that_differ_only_in_their_image_seed_are_one_setting():
    c = ConfigSummary(name="qwen", source="qwen.kept.jsonl", splits={})
    for i, temperature in enumerate([0.7, 0.7, 0.7, 1.0]):
        c.add({"describer": "qwen", "backend": "vllm", "model": "Qwen3-8B", "prompt_id": "pose-v1",
               "prompt_sha": "ab", "params": json.dumps({"temperature": temperature, "seed": 1000 + i, "run_seed": 0})})
    assert c.params == {'{"run_seed": 0, "temperature": 0.7}': 3, '{"run_seed": 0, "temperature": 1.0}': 1}
