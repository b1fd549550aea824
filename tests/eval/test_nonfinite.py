"""Images whose scores are NaN/inf (an fp16 overflow, damaged weights) are counted under their own
reason and shown; past NONFINITE_LIMIT of a task's images the run stops with one line naming the cause."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from focusclip.eval import cli
from focusclip.eval.run import NONFINITE_LIMIT
from tests.eval import fixtures as fx
from tests.eval.fakes import ColourModel
from tests.eval.test_cli import focus_eval
from tests.eval.test_metrics import prompt_classes

POISON = (0, 0, 0)        # images painted this colour embed as NaN


class NaNModel(ColourModel):
    """The colour model, except that black images embed as NaN (what an overflow does to a row)."""

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        emb = super().encode_images(pixels)
        black = pixels.float().mean(dim=(1, 2, 3)) < 0.02                    # [B]
        emb[black] = float("nan")
        return emb


def write_utk(root, races: list[int], black: int) -> None:
    """UTKFace images of these races, painted colour(race); the first `black` of them painted black."""
    for i, race in enumerate(races):
        fx.solid(root / "utkface" / "UTKFace" / f"30_0_{race}_2017011617452{i:04d}.jpg.chip.jpg",
                 POISON if i < black else fx.colour(race), (40, 40))


def in_process(monkeypatch, capsys, model, *args) -> tuple[int, str, str]:
    """focus-eval's main() (run_cli and all) in this process, with `model` in place of the loaded one."""
    monkeypatch.setattr("focusclip.eval.run.load_models", lambda *a, **k: [model])
    monkeypatch.setattr(sys, "argv", ["focus-eval", *map(str, args)])
    with pytest.raises(SystemExit) as done:
        cli.main()
    out = capsys.readouterr()
    return done.value.code or 0, out.out, out.err


def utk_nan_model():
    return NaNModel([fx.colour(r) for r in range(5)], prompt_classes("utkface-race"))


def test_a_few_nonfinite_scores_are_counted_and_shown(tmp_path, monkeypatch, capsys):
    races = [i % 5 for i in range(40)]
    write_utk(tmp_path / "data", races, black=2)                 # 2 of 40 = 5%: at the limit, not past it
    assert 2 <= NONFINITE_LIMIT * 40
    out = tmp_path / "results.json"
    code, table, err = in_process(monkeypatch, capsys, utk_nan_model(), "ckpt", "--data-root", tmp_path / "data",
                                  "--task", "utkface-race", "-o", out, "--workers", "0")
    assert code == 0, err
    entry = json.loads(out.read_text())["tasks"]["utkface-race"]
    assert entry["n"] == 38 and entry["top1"] == 1.0             # the 38 others, all right
    assert entry["skipped"] == {"count": 2, "reasons": {"non-finite score": 2}}
    assert np.array(entry["confusion"]).sum() == 38
    assert "fake-colour utkface-race: 2 image(s) scored NaN/inf (non-finite score), not in n" in table
    assert "utkface-race: 2 of 40 images (5.0%) scored NaN/inf with fake-colour" in err
    report = json.loads((tmp_path / "results.report.json").read_text())
    assert report["skipped"]["utkface-race: non-finite score"] == 2


def test_past_the_limit_the_run_stops_with_the_likely_cause(tmp_path, monkeypatch, capsys):
    races = [i % 5 for i in range(40)]
    write_utk(tmp_path / "data", races, black=3)                 # 3 of 40 = 7.5%
    out = tmp_path / "results.json"
    code, _, err = in_process(monkeypatch, capsys, utk_nan_model(), "ckpt", "--data-root", tmp_path / "data",
                              "--task", "utkface-race", "-o", out, "--workers", "0")
    assert code == 1 and not out.exists()
    last = err.strip().splitlines()[-1]
    assert last == ("error: utkface-race: 3 of 40 images (7.5%) scored NaN/inf with fake-colour, more than 5% "
                    "(likely damaged weights (NaN/inf in the weights file) or a model that overflows in fp32: "
                    "check or replace the checkpoint)")
    assert "Traceback" not in err


def test_unreadable_images_are_not_counted_as_nonfinite(tmp_path, monkeypatch, capsys):
    races = [i % 5 for i in range(10)]
    write_utk(tmp_path / "data", races, black=0)
    bad = sorted((tmp_path / "data" / "utkface" / "UTKFace").iterdir())[:3]
    for path in bad:
        path.write_bytes(b"not a jpeg")
    out = tmp_path / "results.json"
    code, _, err = in_process(monkeypatch, capsys, utk_nan_model(), "ckpt", "--data-root", tmp_path / "data",
                              "--task", "utkface-race", "-o", out, "--workers", "0")
    assert code == 0, err
    entry = json.loads(out.read_text())["tasks"]["utkface-race"]
    assert entry["n"] == 7 and entry["skipped"]["reasons"] == {"unreadable image (UnidentifiedImageError)": 3}


def test_a_checkpoint_with_nan_weights_stops_the_console_script(tmp_path):
    """A real focus-train checkpoint whose image projection holds NaN (a damaged file): every image
    scores NaN, and focus-eval says so in one line, exit 1."""
    from safetensors.torch import load_file, save_file

    from tests.eval.tiny_models import save_tiny_checkpoint

    fx.write_utkface(tmp_path / "data")
    ckpt = save_tiny_checkpoint(tmp_path / "run")
    weights = ckpt / "model.safetensors"
    tensors = load_file(weights)
    name = next(k for k in tensors if "visual_projection" in k or ("vision" in k and k.endswith("weight")))
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, weights, metadata={"format": "pt"})
    r = focus_eval(ckpt, "--data-root", tmp_path / "data", "--task", "utkface-race", "-o", tmp_path / "r.json",
                   "--workers", "0", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(
        "error: utkface-race: 10 of 10 images (100.0%) scored NaN/inf with tiny-clip@3, more than 5% "
        "(likely damaged weights"), r.stderr
