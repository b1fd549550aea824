"""A heatmap PNG that exists but does not decode stops `focus-train` with one line naming it and the
fix, whether the data workers decode it (none or two of them) or the prepared set's build does: it is
never replaced by another sample and counted as an unreadable image."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from focusclip.data.heatmaps import render_heatmaps, to_uint8
from tests.conftest import REPO, console_script
from tests.training.fixtures import make_world, tiny_overrides

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
DAMAGED = "000000005.png"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """16 training images, their heatmap PNGs as `focus-data heatmaps` writes them, one cut in half."""
    world = make_world(tmp_path_factory.mktemp("hworld"), n_train=16, n_val=0, describers=("template",))
    folder = world["images"].parent / "heatmaps"
    folder.mkdir()
    for a in map(json.loads, world["annotations"].read_text().splitlines()):
        hm = to_uint8(render_heatmaps(a["people"], (a["height"], a["width"]))).numpy()
        Image.fromarray(hm, mode="L").save(folder / (Path(a["image"]).stem + ".png"))
    data = (folder / DAMAGED).read_bytes()
    (folder / DAMAGED).write_bytes(data[: len(data) // 2])       # a copy cut short
    return {**world, "heatmaps": folder}


@pytest.mark.parametrize("workers,prepared", [(0, False), (2, False), (2, True)],
                         ids=["decoded-in-process", "decoded-in-workers", "prepared-set"])
def test_a_damaged_heatmap_png_stops_the_run_with_one_line(world, tmp_path, workers, prepared):
    sets = {"data.heatmaps": world["heatmaps"], "train.batch_size": 16, "train.max_steps": 1,
            "train.checkpoint_every": 0, "train.num_workers": workers}
    if prepared:        # shards of 4: the heatmaps are built in a pool of two processes
        sets.update({"data.prepared": tmp_path / "prepared", "data.prepared_shard": 4})
    args = [a for s in tiny_overrides(world, tmp_path / "run", **sets) for a in ("--set", s)]
    r = subprocess.run([console_script("focus-train"), str(REPO / "configs/tiny-focusclip.yaml"), *args],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.stderr
    line = errors[0]
    assert f"{world['heatmaps'] / DAMAGED}: heatmap does not decode (OSError: image file is truncated" in line, line
    assert "focus-data heatmaps" in line and "--set data.heatmaps=render" in line, line
    assert len(line) < 400, line
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "report.json").exists()
