"""The YAML and JSON files that come with a checkpoint (a copied run folder, a hub download) are parsed
as plain data, and one that does not parse — a `!!python` tag safe_load refuses, 200,000 nested
brackets that exhaust the parser's stack — is one line naming the file (issue 30), never a traceback:
through `focus-train export` and `focus-train push` (both read the card's train_config.yaml) and
`load_checkpoint`, focus-eval's loader."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from focusclip.core.errors import FocusError
from focusclip.training import checkpoint as ck
from tests.conftest import console_script
from tests.eval.tiny_models import save_tiny_checkpoint

DEEP = "[" * 200_000 + "]" * 200_000
# file → (its hostile text, what the error names: the file, or the folder the tokenizer is read from)
HOSTILE = {
    "train_config.yaml (python tag)": ("train_config.yaml", "model: !!python/object/apply:os.system ['touch {marker}']\n",
                                       "train_config.yaml: cannot read the checkpoint's training config "
                                       "(ConstructorError: could not determine a constructor for the tag "
                                       "'tag:yaml.org,2002:python/object/apply:os.system'"),
    "train_config.yaml (deep)": ("train_config.yaml", f"data: {DEEP}\n",
                                 "train_config.yaml: cannot read the checkpoint's training config (RecursionError"),
    "config.json (deep)": ("config.json", DEEP, "config.json: cannot read the checkpoint's config (RecursionError"),
    "tokenizer.json (deep)": ("tokenizer.json", DEEP, ": cannot read the checkpoint's tokenizer (RecursionError"),
    "tokenizer_config.json (deep)": ("tokenizer_config.json", DEEP,
                                     ": cannot read the checkpoint's tokenizer (RecursionError"),
}


def _hostile_checkpoint(tmp_path: Path, case: str) -> tuple[Path, Path, str]:
    name, text, error = HOSTILE[case]
    marker = tmp_path / "pwned"
    last = save_tiny_checkpoint(tmp_path / "run").parent / ck.LAST
    for folder in (last, last.parent / "3"):         # last/ holds hard links of checkpoint 3's files
        (folder / name).unlink()
        (folder / name).write_text(text.format(marker=marker))
    return last, marker, error


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize("case", sorted(set(HOSTILE) - {"config.json (deep)"}))   # load_checkpoint tests that one
def test_export_names_the_file(tmp_path, case):
    last, marker, error = _hostile_checkpoint(tmp_path, case)
    proc = subprocess.run([console_script("focus-train"), "export", str(last), "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    line = _one_error_line(proc)
    assert line.startswith(f"error: {last}") and error in line, line
    assert not marker.exists() and not (tmp_path / "out").exists() and not (tmp_path / "out.incomplete").exists()


@pytest.mark.parametrize("case", ["train_config.yaml (python tag)", "config.json (deep)"])
def test_push_names_the_file_before_it_connects(tmp_path, case):
    """Port 9 (discard) on loopback refuses: the file is read before any request."""
    last, marker, error = _hostile_checkpoint(tmp_path, case)
    env = {**os.environ, "HF_TOKEN": "hf_TEST-token", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run([console_script("focus-train"), "push", str(last), "--repo-id", "someone/model"],
                          capture_output=True, text=True, timeout=300, env=env)
    line = _one_error_line(proc)
    assert line.startswith(f"error: {last}") and error in line, line
    assert not marker.exists()


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_load_checkpoint_names_the_file(tmp_path, case):
    last, marker, error = _hostile_checkpoint(tmp_path, case)
    with pytest.raises(FocusError) as err:
        ck.load_checkpoint(last)
    assert str(err.value).startswith(str(last)) and error in str(err.value), err.value
    assert not marker.exists()


def test_focus_eval_tells_the_model_kind_of_a_folder_whose_config_is_too_deep(tmp_path):
    """Without train_config.yaml focus-eval reads config.json to tell a checkpoint from another dual
    encoder; a config that exhausts the parser is taken as a checkpoint, whose loader names it."""
    from focusclip.eval.model import model_kind

    last, _, error = _hostile_checkpoint(tmp_path, "config.json (deep)")
    for folder in (last, last.parent / "3"):
        (folder / ck.TRAIN_CONFIG).unlink()
    assert model_kind(str(last)) == "checkpoint"
    with pytest.raises(FocusError, match=error.replace("(", r"\(")):
        ck.load_checkpoint(last)
