"""Every command against the bad inputs users make, through the real console scripts (docs/design.md §1.1).

Each case runs one command that must fail and checks the rule: exit status 1, one `error:` line
naming what, where and the fix on a short stderr, no traceback, and nothing left behind — the case's
folder holds exactly what it held before, so a new output is absent, no temporary file remains and a
good earlier output survives the failing rerun byte for byte.

"Unwritable" is real, not chmod theatre: these tests run as root, which ignores permission bits, so a
read-only folder is exercised by running the command as `nobody` (setpriv), and the other cases use
paths that no user can write (a regular file where a folder belongs).
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import pytest

from tests.conftest import console_script
from tests.training.fixtures import damaged_pickles

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
ENV.pop("HF_TOKEN", None)
ENV.pop("OPENAI_API_KEY", None)
EVAL = ["--workers", "0", "--batch-size", "4", "--limit", "4"]
PROGRESS = re.compile(r"\d+%\|")   # a tqdm frame
WAITING = re.compile(r"^waiting up to \d+ s for the server at ")   # describe's notice before its wait bar
MISSING = re.compile(r"^missing .+: [\w, -]+ not scored$")        # focus-eval: a dataset absent, once


def _entry(image: str) -> dict:
    """One person of an HRNet/mmpose JSON list (1-based coordinates)."""
    joints = [[10.0 + 2 * j, 5.0 + 3 * j] for j in range(16)]
    return {"image": image, "center": [30.0, 25.0], "scale": 0.3, "joints": joints, "joints_vis": [1] * 16}


@pytest.fixture(scope="module")
def w(tmp_path_factory):
    """Inputs the cases share, in a folder `nobody` can read (pytest's own is private to root)."""
    import cv2
    import numpy as np

    from focusclip.data.records import write_annotations
    from focusclip.pipeline.describe.stage import DescribeOptions, run_describe
    from tests.eval import fixtures as fx
    from tests.eval.tiny_models import save_tiny_checkpoint
    from tests.pipeline.describe.test_describe import random_annotations
    from tests.training.fixtures import make_world, tiny_overrides

    root = Path(tempfile.mkdtemp(prefix="focusclip-errors-"))
    root.chmod(0o755)
    ns = SimpleNamespace(root=root)
    ns.ann = root / "annotations.jsonl"
    write_annotations(ns.ann, random_annotations(6))
    ns.desc = root / "descriptions" / "template.jsonl"
    run_describe(DescribeOptions(ns.ann, ns.desc), progress=False)
    ns.empty = root / "empty.jsonl"
    ns.empty.write_text("")
    ns.garbage = root / "garbage.bin"
    ns.garbage.write_bytes(bytes(range(256)) * 8)
    ns.latin1 = root / "latin1.jsonl"           # a record saved by an editor in Latin-1
    ns.latin1.write_bytes(ns.ann.read_bytes().replace(b'"image": "', '"image": "café_'.encode("latin-1"), 1))
    ns.hrnet = root / "mpii.json"
    ns.hrnet.write_text(json.dumps([_entry("000000001.jpg"), _entry("000000002.jpg")]))
    ns.truncated = root / "truncated.json"
    ns.truncated.write_bytes(ns.hrnet.read_bytes()[: len(ns.hrnet.read_bytes()) // 2])
    ns.images = root / "images"                 # one real image for heatmaps
    ns.images.mkdir()
    cv2.imwrite(str(ns.images / "a.jpg"), np.full((48, 64, 3), 120, np.uint8))
    ns.hm_ann = root / "hm.jsonl"
    ns.hm_ann.write_text(json.dumps({"image": "a.jpg", "split": "train", "people": [
        {"id": 0, "kpts": [[10.0 + 2 * j, 5.0 + 2 * j] for j in range(16)], "kpts_vis": [2] * 16}]}) + "\n")
    ns.no_ann_images = root / "no-such-images"
    ns.ckpt = root / "run"
    save_tiny_checkpoint(ns.ckpt)
    ns.eval_data = root / "evaldata"
    fx.write_utkface(ns.eval_data)
    ns.no_data = root / "nodata"
    ns.no_data.mkdir()
    ns.videos = root / "kinetics-root"         # clips OpenCV cannot decode
    clips = ns.videos / "kinetics400" / "videos" / "val"
    clips.mkdir(parents=True)
    for i in range(2):
        (clips / f"abcdefghij{i}_000010_000020.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    world = make_world(root / "train-world", n_train=16, n_val=0, describers=("template",))
    ns.train_sets = lambda out: [a for s in tiny_overrides(world, out) for a in ("--set", s)]
    ns.config = Path(__file__).resolve().parents[1] / "configs" / "tiny-clip.yaml"
    ns.latin1_config = root / "latin1.yaml"
    ns.latin1_config.write_bytes(ns.config.read_bytes().replace(b"# The tiny", "# Très petit".encode("latin-1"), 1))
    ns.closed_port = _free_port()
    for p in root.rglob("*"):                   # readable (and folders enterable) by anyone
        p.chmod(p.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if p.is_dir() else 0))
    yield ns
    shutil.rmtree(root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------- cases

@dataclass
class Case:
    id: str
    script: str
    args: Callable                     # (w, d) -> argv after the script; d is the case's own folder
    expect: str                        # a substring of the one error line
    setup: Callable | None = None      # (w, d) -> None: e.g. a good earlier output
    user: str = "root"                 # "nobody": run without root's disregard for permissions
    env: dict = field(default_factory=dict)


def _file(d: Path, name: str = "afile") -> Path:
    (d / name).write_text("a regular file\n")
    return d / name


def _readonly(d: Path, name: str = "ro") -> Path:
    (d / name).mkdir()
    (d / name).chmod(0o555)
    return d / name


def _good(script: str, *args) -> Callable:
    """A setup that runs the command once successfully (the earlier output the rerun must keep)."""
    def setup(w, d):
        r = _run(script, [a(w, d) if callable(a) else a for a in args])
        assert r.returncode == 0, r.stderr
    return setup


def _garbage_checkpoint(which: str) -> Callable:
    """A copy of the tiny checkpoint with one file garbled: `config.json`, `model.safetensors`
    (truncated), `training_state/state.pt` (damaged bytes)."""
    def setup(w, d):
        shutil.copytree(w.ckpt, d / "run")
        last = d / "run" / "checkpoints" / "last"
        if which == "config.json":
            (last / "config.json").write_text('{"name": "tiny-clip", "image_size": ')
        elif which == "model.safetensors":
            data = (last / "model.safetensors").read_bytes()
            (last / "model.safetensors").unlink()                  # a hard link to checkpoints/3
            (last / "model.safetensors").write_bytes(data[: len(data) // 3])
        else:
            (last / "training_state" / "state.pt").unlink()
            # bytes the unpickler overflows on (random bytes do that about once in a hundred)
            (last / "training_state" / "state.pt").write_bytes(damaged_pickles()["IndexError"])
    return setup


def _train_run_with(which: str) -> Callable:
    """A focus-train output_dir whose checkpoints/last has a garbled resume file."""
    def setup(w, d):
        _garbage_checkpoint(which)(w, d)
        (d / "run" / "config.yaml").write_text("earlier: run\n")
        (d / "run" / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    return setup


F, T, E = "focus-data", "focus-train", "focus-eval"
CASES = [
    # convert: missing, empty, garbage, wrong encoding, truncated; unwritable; an earlier output kept
    Case("convert-missing", F, lambda w, d: ["convert", "mpii", w.root / "nope.json", "-o", d / "out"],
         "nope.json: file not found"),
    Case("convert-empty", F, lambda w, d: ["convert", "mpii", w.empty, "-o", d / "out"],
         "is neither a MATLAB .mat file nor a JSON list"),
    Case("convert-garbage", F, lambda w, d: ["convert", "mpii", w.garbage, "-o", d / "out"],
         "is neither a MATLAB .mat file nor a JSON list"),
    Case("convert-latin1", F, lambda w, d: ["convert", "mpii", w.latin1, "-o", d / "out"], "not valid JSON"),
    Case("convert-truncated", F, lambda w, d: ["convert", "mpii", w.truncated, "-o", d / "out"],
         "truncated.json: not valid JSON"),
    Case("convert-under-a-file", F, lambda w, d: ["convert", "mpii", w.hrnet, "-o", _file(d) / "a.jsonl"],
         "afile is a file, not a folder"),
    Case("convert-readonly", F, lambda w, d: ["convert", "mpii", w.hrnet, "-o", _readonly(d) / "a.jsonl"],
         "cannot write here: permission denied", user="nobody"),
    Case("convert-rerun-keeps-output", F, lambda w, d: ["convert", "mpii", w.truncated, "-o", d / "out.jsonl",
                                                        "--force"],
         "truncated.json: not valid JSON",
         setup=_good(F, "convert", "mpii", lambda w, d: w.hrnet, "-o", lambda w, d: d / "out.jsonl")),
    Case("convert-emotic-garbage", F, lambda w, d: ["convert", "emotic", w.garbage, "-o", d / "out"],
         "is not a MATLAB .mat file"),
    Case("convert-emotic-output-a-file", F, lambda w, d: ["convert", "emotic", w.garbage, "-o", _file(d)],
         "afile: exists and is not a folder"),
    # heatmaps
    Case("heatmaps-empty", F, lambda w, d: ["heatmaps", w.empty, "--images", w.images, "-o", d / "out"],
         "empty.jsonl: holds no annotation records"),
    Case("heatmaps-garbage", F, lambda w, d: ["heatmaps", w.garbage, "--images", w.images, "-o", d / "out"],
         "no heatmap can be rendered"),
    Case("heatmaps-output-a-file", F, lambda w, d: ["heatmaps", w.hm_ann, "--images", w.images, "-o", _file(d)],
         "afile: exists and is not a folder"),
    Case("heatmaps-readonly", F, lambda w, d: ["heatmaps", w.hm_ann, "--images", w.images, "-o", _readonly(d)],
         "ro: cannot write here: permission denied", user="nobody"),
    Case("heatmaps-rerun-keeps-output", F, lambda w, d: ["heatmaps", w.ann, "--images", w.images, "-o",
                                                         d / "out", "--force"],
         "no heatmap can be rendered (6 missing image)",
         setup=_good(F, "heatmaps", lambda w, d: w.hm_ann, "--images", lambda w, d: w.images, "-o",
                     lambda w, d: d / "out")),
    # describe
    Case("describe-missing", F, lambda w, d: ["describe", w.root / "nope.jsonl", "-o", d / "out.jsonl"],
         "nope.jsonl: file not found"),
    Case("describe-empty", F, lambda w, d: ["describe", w.empty, "-o", d / "out.jsonl"],
         "empty.jsonl: holds no annotation records"),
    Case("describe-garbage", F, lambda w, d: ["describe", w.garbage, "-o", d / "out.jsonl"], "line 1"),
    Case("describe-latin1", F, lambda w, d: ["describe", w.latin1, "-o", d / "out.jsonl"],
         "line 1 is not UTF-8 text"),
    Case("describe-no-split", F, lambda w, d: ["describe", w.ann, "-o", d / "out.jsonl", "--split", "test"],
         "has no 'test' images"),
    Case("describe-output-a-folder", F, lambda w, d: ["describe", w.ann, "-o", d / "out.jsonl"],
         "out.jsonl: is a folder, not a file", setup=lambda w, d: (d / "out.jsonl").mkdir()),
    Case("describe-under-a-file", F, lambda w, d: ["describe", w.ann, "-o", _file(d) / "d.jsonl"],
         "afile is a file, not a folder"),
    Case("describe-readonly", F, lambda w, d: ["describe", w.ann, "-o", _readonly(d) / "d.jsonl"],
         "cannot write here: permission denied", user="nobody"),
    Case("describe-dead-server", F, lambda w, d: [
        "describe", w.ann, "-o", d / "out.jsonl", "--backend", "openai", "--model", "m", "--force",
        "--base-url", f"http://127.0.0.1:{w.closed_port}/v1", "--server-wait", "1"],
         "no server answered", setup=_good(F, "describe", lambda w, d: w.ann, "-o",
                                                      lambda w, d: d / "out.jsonl")),
    # filter
    Case("filter-missing", F, lambda w, d: ["filter", w.root / "nope.jsonl", "--annotations", w.ann,
                                            "-o", d / "k.jsonl"], "descriptions file not found"),
    Case("filter-empty", F, lambda w, d: ["filter", w.empty, "--annotations", w.ann, "-o", d / "k.jsonl"],
         "holds no description records"),
    Case("filter-garbage", F, lambda w, d: ["filter", w.garbage, "--annotations", w.ann, "-o", d / "k.jsonl"],
         "is not"),
    Case("filter-latin1-annotations", F, lambda w, d: ["filter", w.desc, "--annotations", w.latin1,
                                                       "-o", d / "k.jsonl"], "line 1 is not UTF-8 text"),
    Case("filter-under-a-file", F, lambda w, d: ["filter", w.desc, "--annotations", w.ann,
                                                 "-o", _file(d) / "k.jsonl"], "is a file, not a folder"),
    Case("filter-readonly", F, lambda w, d: ["filter", w.desc, "--annotations", w.ann,
                                             "-o", _readonly(d) / "k.jsonl"], "permission denied",
         user="nobody"),
    Case("filter-rerun-keeps-output", F, lambda w, d: ["filter", w.desc, "--annotations", w.garbage,
                                                       "-o", d / "k.jsonl"], "garbage.bin",
         setup=_good(F, "filter", lambda w, d: w.desc, "--annotations", lambda w, d: w.ann, "-o",
                     lambda w, d: d / "k.jsonl")),
    # publish
    Case("publish-missing", F, lambda w, d: ["publish", "--annotations", w.root / "nope.jsonl", "--descriptions",
                                             f"template={w.desc}", "-o", d / "out"], "annotations file not found"),
    Case("publish-garbage", F, lambda w, d: ["publish", "--annotations", w.ann, "--descriptions",
                                             f"template={w.garbage}", "-o", d / "out"], "garbage.bin"),
    Case("publish-push-without-token", F, lambda w, d: [
        "publish", "--annotations", w.ann, "--descriptions", f"template={w.desc}", "-o", d / "out",
        "--repo-id", "someone/pose", "--push"], "HF_TOKEN: no Hugging Face token for --push",
         env={"HF_HOME": "/nonexistent/hf-home", "HF_HUB_OFFLINE": "1"}),
    Case("publish-output-a-file", F, lambda w, d: ["publish", "--annotations", w.ann, "--descriptions",
                                                   f"template={w.desc}", "-o", _file(d)],
         "afile: exists and is not a folder"),
    Case("publish-readonly", F, lambda w, d: ["publish", "--annotations", w.ann, "--descriptions",
                                              f"template={w.desc}", "-o", _readonly(d) / "out"],
         "permission denied", user="nobody"),
    Case("publish-rerun-keeps-output", F, lambda w, d: ["publish", "--annotations", w.ann, "--descriptions",
                                                        f"template={w.latin1}", "-o", d / "out"],
         "latin1.jsonl: line 1 is not UTF-8 text",
         setup=_good(F, "publish", "--annotations", lambda w, d: w.ann, "--descriptions",
                     lambda w, d: f"template={w.desc}", "-o", lambda w, d: d / "out")),
    # synth, frames, demo
    Case("synth-output-a-file", F, lambda w, d: ["synth", "-o", _file(d), "--n-train", "1", "--n-eval", "0"],
         "afile: exists and is not a folder"),
    Case("synth-under-a-file", F, lambda w, d: ["synth", "-o", _file(d) / "w", "--n-train", "1", "--n-eval", "0"],
         "is a file, not a folder"),
    Case("synth-readonly", F, lambda w, d: ["synth", "-o", _readonly(d) / "w", "--n-train", "1", "--n-eval", "0"],
         "permission denied", user="nobody"),
    Case("frames-root-a-file", F, lambda w, d: ["frames", "--data-root", _file(d)], "no video clips found"),
    Case("frames-undecodable", F, lambda w, d: ["frames", "--data-root", w.videos],
         "no frame could be extracted from the 2 clips (2 undecodable video)"),
    Case("demo-output-a-file", F, lambda w, d: ["demo", "-o", _file(d)], "afile: exists and is not a folder"),
    Case("demo-under-a-file", F, lambda w, d: ["demo", "-o", _file(d) / "run"], "is a file, not a folder"),
    # focus-train
    Case("train-missing-config", T, lambda w, d: [w.root / "nope.yaml"], "nope.yaml: config file not found"),
    Case("train-latin1-config", T, lambda w, d: [w.latin1_config, *w.train_sets(d / "run")],
         "latin1.yaml: is not UTF-8 text"),
    Case("train-garbage-config", T, lambda w, d: [w.garbage], "garbage.bin"),
    Case("train-output-a-file", T, lambda w, d: [w.config, *w.train_sets(_file(d))],
         "afile: exists and is not a folder (pass a folder path with output_dir)"),
    Case("train-output-under-a-file", T, lambda w, d: [w.config, *w.train_sets(_file(d) / "run")],
         "is a file, not a folder"),
    Case("train-output-readonly", T, lambda w, d: [w.config, *w.train_sets(_readonly(d) / "run")],
         "permission denied", user="nobody"),
    Case("train-resume-garbage-state", T, lambda w, d: [w.config, *w.train_sets(d / "run"), "--resume", "latest"],
         "state.pt: cannot read the resume state", setup=_train_run_with("state.pt")),
    Case("train-resume-truncated-weights", T, lambda w, d: [w.config, *w.train_sets(d / "run"), "--resume",
                                                            "latest"],
         "model.safetensors: cannot read the checkpoint's weights",
         setup=_train_run_with("model.safetensors")),
    Case("prepare-unset", T, lambda w, d: ["prepare", w.config, *w.train_sets(d / "run")],
         "data.prepared is not set"),
    Case("prepare-folder-a-file", T, lambda w, d: ["prepare", w.config, *w.train_sets(d / "run"), "--set",
                                                   f"data.prepared={_file(d)}"],
         "afile: exists and is not a folder (pass a folder path with data.prepared)"),
    # focus-eval
    Case("eval-missing-checkpoint", E, lambda w, d: [w.root / "nope", "--data-root", w.eval_data, "-o",
                                                     d / "r.json", "--task", "utkface-age", *EVAL],
         "checkpoint not found"),
    Case("eval-garbage-config", E, lambda w, d: [d / "run", "--data-root", w.eval_data, "-o", d / "r.json", *EVAL],
         "cannot read the checkpoint", setup=_garbage_checkpoint("config.json")),
    Case("eval-truncated-weights", E, lambda w, d: [d / "run", "--data-root", w.eval_data, "-o", d / "r.json",
                                                    *EVAL], "cannot read the checkpoint",
         setup=_garbage_checkpoint("model.safetensors")),
    Case("eval-no-dataset", E, lambda w, d: [w.ckpt, "--data-root", w.no_data, "-o", d / "r.json", *EVAL],
         "no dataset of the 12 selected task(s) is here"),
    Case("eval-under-a-file", E, lambda w, d: [w.ckpt, "--data-root", w.eval_data, "-o", _file(d) / "r.json",
                                               *EVAL], "is a file, not a folder"),
    Case("eval-readonly", E, lambda w, d: [w.ckpt, "--data-root", w.eval_data, "-o", _readonly(d) / "r.json",
                                           *EVAL], "permission denied", user="nobody"),
    Case("eval-rerun-keeps-results", E, lambda w, d: [d / "run", "--data-root", w.eval_data, "-o", d / "r.json",
                                                      *EVAL], "cannot read the checkpoint",
         setup=lambda w, d: (_good(E, lambda w, d: w.ckpt, "--data-root", lambda w, d: w.eval_data, "--task",
                                   "utkface-age", "-o", lambda w, d: d / "r.json", *EVAL)(w, d),
                             _garbage_checkpoint("model.safetensors")(w, d))),
]


# ---------------------------------------------------------------------------------------------- running

def _as_nobody(cmd: list[str]) -> list[str]:
    """The command as an unprivileged user, for whom permission bits hold (root ignores them)."""
    if os.geteuid() != 0:
        return cmd
    setpriv = shutil.which("setpriv")
    prefix = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    if setpriv is None or not _nobody_can_run(tuple(prefix), cmd[0]):
        pytest.skip("root, and no way to run this checkout as `nobody` (no setpriv, or a private home): "
                    "a read-only folder cannot be made real here")
    return [*prefix, *cmd]


@functools.lru_cache(maxsize=None)
def _nobody_can_run(prefix: tuple, exe: str) -> bool:
    return subprocess.run([*prefix, exe, "--help"], capture_output=True).returncode == 0


def _run(script: str, args: list, user: str = "root", env: dict | None = None, home: Path | None = None):
    cmd = [console_script(script), *map(str, args)]
    full_env = {**ENV, **(env or {})}
    if user == "nobody":
        cmd = _as_nobody(cmd)
        full_env["HOME"] = str(home)          # root's home is not nobody's to write caches in
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=240)


def snapshot(path: Path) -> dict[str, bytes] | None:
    """Every file under `path` (or the file itself) with its bytes; None when nothing is there."""
    if path.is_file():
        return {".": path.read_bytes()}
    if not path.is_dir():
        return None
    return {str(p.relative_to(path)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(path.rglob("*"))}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_input_is_one_line_and_leaves_nothing_behind(case: Case, w):
    d = Path(tempfile.mkdtemp(prefix=f"{case.id}-", dir=w.root))    # the case's inputs and outputs
    home = Path(tempfile.mkdtemp(prefix="home-", dir=w.root))       # caches of a run as `nobody`
    for folder in (d, home):
        folder.chmod(0o777)                                         # `nobody` may write where it should
    try:
        if case.setup:
            case.setup(w, d)
        args = case.args(w, d)
        before = snapshot(d)          # outputs not made yet are absent; earlier outputs, byte for byte
        r = _run(case.script, args, case.user, case.env, home=home)
        assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
        assert "Traceback" not in r.stderr, r.stderr
        lines = [ln for ln in r.stderr.split("\n") if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("error:")]
        assert len(errors) == 1 and case.expect in errors[0], lines
        chatter = [ln for ln in lines if not ln.startswith("error:") and not PROGRESS.search(ln)
                   and not WAITING.match(ln) and not MISSING.match(ln)]
        assert not chatter, lines      # the error line, and at most a bar and its notices
        assert len(errors[0]) < 400, errors[0]
        after = snapshot(d)
        assert after == before, sorted(set(after or {}) ^ set(before or {})) or "a file's bytes changed"
    finally:
        for folder in (d, home):
            for p in [folder, *folder.rglob("*")]:
                if p.is_dir() and not p.is_symlink():
                    p.chmod(0o777)
            shutil.rmtree(folder, ignore_errors=True)
