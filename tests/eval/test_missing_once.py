"""focus-eval names each absent dataset once: one stderr line per missing file with every task it
serves (two fairface tasks share one CSV), beside the table's `missing` rows; nothing else repeats it."""
from __future__ import annotations

import os
import subprocess

from tests.conftest import console_script
from tests.eval import fixtures as fx
from tests.eval.tiny_models import save_tiny_checkpoint


def test_each_missing_dataset_is_named_once(tmp_path):
    ckpt = save_tiny_checkpoint(tmp_path / "run")
    data = tmp_path / "data"
    fx.write_utkface(data)
    r = subprocess.run([console_script("focus-eval"), str(ckpt), "--data-root", str(data), "--task", "utkface-race",
                        "--task", "fairface-age", "--task", "fairface-race", "-o", str(tmp_path / "r.json"),
                        "--workers", "0"], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    csv = data / "fairface" / "fairface_label_val.csv"
    assert [ln for ln in r.stderr.splitlines() if "fairface" in ln] == [
        f"missing {csv}: fairface-age, fairface-race not scored"]
    rows = [ln.split("|")[0].strip() for ln in r.stdout.splitlines() if ln.rstrip().endswith("missing")]
    assert rows == ["fairface-age (top-1)", "fairface-race (top-1)"]     # the table's rows, once each
