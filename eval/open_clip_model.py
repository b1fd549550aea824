"""open_clip models behind the `EvalModel` interface, named on the command line

    open_clip:ARCH:PRETRAINED        ARCH one of open_clip.list_models(); PRETRAINED a tag of
                                     open_clip.list_pretrained_tags_by_model(ARCH) or a weights file
    open_clip:hf-hub:ORG/REPO        a repo open_clip's push_to_hf_hub wrote (open_clip_config.json + weights)
    open_clip:local-dir:DIR          the same files in a folder

and loaded the way open_clip loads them (`create_model_and_transforms`, `get_tokenizer`): the
image through its eval transform, the prompts through its tokenizer, tag weights downloaded into the
Hugging Face hub cache by open_clip's own `download_pretrained` (HF_HUB_OFFLINE: the cache only).
Needs the `open-clip` extra (open_clip_torch, with a torchvision built for the installed torch).

Read against open_clip_torch 3.0.0 and 3.3.0, whose factory.py and pretrained.py behave alike here:
an unknown ARCH or tag and a failed download are bare RuntimeErrors and FileNotFoundErrors, and
weights that cannot be had for a schema name leave the model random with a logged warning. So the
name is checked and the weights downloaded here first (each failure one line), and the model is then
built with `require_pretrained=True`, inside `reading` only: what fails there is the weights file.
"""
from __future__ import annotations

import difflib
import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from focusclip.core.errors import brief, fail, reading
from focusclip.core.hub import file_sha256
from focusclip.eval.dual_encoder import param_value

PREFIX = "open_clip:"            # what starts an open_clip model's name (eval.model.model_kind)
SCHEMAS = ("hf-hub:", "local-dir:")       # open_clip's own names of a model with its config beside it
INSTALL = "pip install 'focusclip[open-clip]': open_clip_torch, with a torchvision built for your torch, docs/eval.md"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".npz", ".npy")


class OpenClipModel:
    """An open_clip model + its eval transform and tokenizer, normalised embeddings out."""

    def __init__(self, model, transform, tokenizer, name: str, device: torch.device,
                 weights: tuple[Path, ...], path: str):
        import open_clip

        self.model = model.to(device).eval()
        self.transform = transform
        self.tokenizer = tokenizer
        self.name = name
        self.device = device
        self.weights = weights          # the file(s) the weights were read from (sha256)
        self.path = path                # what names them in results: the file, ARCH:TAG or the schema name
        self.resize = "processor"       # open_clip's own transform makes the image what the model takes
        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg.get("size", 224)
        self.image_size = int(max(size) if isinstance(size, (tuple, list)) else size)
        # equal for open_clip models whose eval transforms are equal (image_transform_v2 of this cfg)
        self.preprocess_key = json.dumps({"open_clip": cfg}, sort_keys=True, default=str)
        self.logit_scale = param_value(getattr(model, "logit_scale", None), exp=True)
        self.logit_bias = param_value(getattr(model, "logit_bias", None))

    @functools.cached_property
    def sha256(self) -> Optional[str]:
        """SHA-256 of the weights file; of the files' hashes in name order when a folder holds several."""
        if len(self.weights) == 1:
            return file_sha256(self.weights[0])
        if not self.weights:
            return None
        import hashlib

        return hashlib.sha256("".join(file_sha256(f) for f in self.weights).encode()).hexdigest()

    def preprocess(self, image) -> torch.Tensor:
        """RGB PIL image → pixels [3, S, S] through open_clip's eval transform (resize, crop, normalise)."""
        return self.transform(image)

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.encode_image(pixels.to(self.device)).float(), dim=-1)     # [B, D]

    @torch.no_grad()
    def encode_texts(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        outs = []
        for i in range(0, len(texts), batch_size):
            tokens = self.tokenizer(list(texts[i:i + batch_size])).to(self.device)               # [N, L]
            outs.append(F.normalize(self.model.encode_text(tokens).float(), dim=-1))
        return torch.cat(outs)                                                                    # [N, D]


def import_open_clip(name: str):
    """The open_clip package, or one line saying how to install it (`name`: the model asked for)."""
    try:
        import open_clip
    except ImportError as e:
        what = "open_clip is not installed" if e.name == "open_clip" else f"open_clip does not import ({brief(e)})"
        raise fail(what, name, INSTALL) from None
    except RuntimeError as e:     # torchvision built for another torch: "operator torchvision::nms does not exist"
        raise fail(f"open_clip does not import with torch {torch.__version__} ({brief(e)})", name,
                   "install the torchvision release made for this torch, docs/eval.md") from None
    return open_clip


def parse_name(name: str) -> tuple[str, Optional[str]]:
    """`open_clip:ARCH:PRETRAINED` → (ARCH, PRETRAINED); `open_clip:hf-hub:…`/`local-dir:…` → (that, None)."""
    rest = name[len(PREFIX):]
    if rest.startswith(SCHEMAS):
        if rest.endswith(":"):
            raise fail("no repo or folder after the schema", name, "write open_clip:hf-hub:ORG/REPO or open_clip:local-dir:DIR")
        return rest, None
    arch, _, pretrained = rest.partition(":")
    if not arch or not pretrained:
        raise fail("an open_clip model needs its architecture and its weights", name,
                   "write open_clip:ARCH:PRETRAINED with a tag of open_clip.list_pretrained(), e.g. "
                   "open_clip:ViT-B-32:laion2b_s34b_b79k, or with a weights file")
    return arch, pretrained


@dataclass(frozen=True)
class Weights:
    """Where a model's weights are, resolved before open_clip builds it."""
    model_name: str                 # ARCH or the schema name, as create_model_and_transforms takes it
    pretrained: Optional[str]       # its `pretrained`: a tag or an absolute file (None with a schema)
    files: tuple[Path, ...]         # the weight file(s) on disk (sha256)
    label: str                      # the name in results, after `open_clip:`
    path: str                       # the checkpoint path in results


def load_open_clip(name: str, device: torch.device) -> OpenClipModel:
    """An open_clip model from `open_clip:ARCH:PRETRAINED` (tag or file), `open_clip:hf-hub:ORG/REPO`
    or `open_clip:local-dir:DIR`, named `open_clip:ARCH:<tag or file name>`, `open_clip:hf-hub:ORG/REPO`
    or `open_clip:local-dir:<folder name>`."""
    arch, pretrained = parse_name(name)
    open_clip = import_open_clip(name)
    if arch.startswith("hf-hub:"):
        w = _hub_repo(open_clip, arch[len("hf-hub:"):], name)
    elif arch.startswith("local-dir:"):
        w = _local_dir(Path(arch[len("local-dir:"):]).expanduser(), name)
    else:
        w = _pretrained(open_clip, _architecture(open_clip, arch, name), pretrained, name)
    fix = ("pass weights saved from this architecture (open_clip's model.state_dict()); "
           "a damaged download needs removing from the hub cache")
    with reading(w.files[0] if len(w.files) == 1 else w.path, "the open_clip model", fix, errors=_load_errors()):
        # → (model, train transform, eval transform)
        model, _, transform = open_clip.create_model_and_transforms(w.model_name, pretrained=w.pretrained,
                                                                    require_pretrained=True)
    try:
        tokenizer = open_clip.get_tokenizer(w.model_name)
    except (OSError, ValueError) as e:     # an HF tokenizer (SigLIP, …) that cannot be downloaded or read
        raise fail(f"cannot load its tokenizer ({brief(e)})", name,
                   "check the network, or unset HF_HUB_OFFLINE to download it once") from None
    return OpenClipModel(model, transform, tokenizer, f"{PREFIX}{w.label}", device, w.files, w.path)


def _load_errors() -> tuple:
    """Beside `reading`'s: safetensors' own, and open_clip's assertion that the weights' positional
    embeddings have the architecture's width (model.resize_pos_embed), for weights of another one."""
    from safetensors import SafetensorError

    return SafetensorError, AssertionError


def _architecture(open_clip, arch: str, name: str) -> str:
    """ARCH as open_clip looks it up ('/' read as '-': ViT-B/32 is ViT-B-32), or one line with close names."""
    arch = arch.replace("/", "-")
    if open_clip.get_model_config(arch) is not None:
        return arch
    names = open_clip.list_models()
    close = difflib.get_close_matches(arch, names, n=4, cutoff=0.5)
    hint = f"close: {', '.join(close)}; " if close else ""
    raise fail(f"open_clip has no architecture {arch!r}", name, f"{hint}open_clip.list_models() lists all {len(names)}")


def _pretrained(open_clip, arch: str, pretrained: str, name: str) -> Weights:
    """A tag's weights (downloaded into the hub cache, as open_clip downloads them) or the file named.
    A tag wins over a file of the same name, as in open_clip."""
    if open_clip.is_pretrained_cfg(arch, pretrained):
        cfg = open_clip.get_pretrained_cfg(arch, pretrained)
        repo = os.path.split(cfg.get("hf_hub", ""))[0] or cfg.get("url", "")
        try:
            file = Path(open_clip.download_pretrained(cfg))
        except (OSError, RuntimeError) as e:      # FileNotFoundError wrapping the hub's error; urllib's; a checksum
            raise _download_error(e, f"the weights of {arch}:{pretrained} ({repo})", name) from None
        return Weights(arch, pretrained, (file,), f"{arch}:{pretrained}", f"{arch}:{pretrained}")
    path = Path(pretrained).expanduser()
    if path.is_file():
        path = path.resolve()
        return Weights(arch, str(path), (path,), f"{arch}:{path.name}", str(path))
    if os.sep in pretrained or pretrained.endswith(WEIGHT_SUFFIXES) or path.exists():
        raise fail(f"no weights file {path}", name, "pass the path of a file holding the model's state_dict")
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if not tags:
        raise fail(f"no weights file {pretrained!r}, and open_clip has no pretrained tag for {arch}", name,
                   "pass the path of a file holding the model's state_dict")
    shown = difflib.get_close_matches(pretrained.lower().replace("-", "_"), tags, n=4, cutoff=0.5)
    hint = f"close: {', '.join(shown)}" if shown else f"e.g. {', '.join(tags[:4])}"
    raise fail(f"{pretrained!r} is neither a pretrained tag of {arch} nor a file", name,
               f"{hint}; all {len(tags)} in open_clip.list_pretrained_tags_by_model({arch!r}); or pass a weights file")


def _hub_repo(open_clip, repo: str, name: str) -> Weights:
    """A repo's open_clip_config.json and weights, into the hub cache the way create_model fetches them
    (safetensors first); create_model then reads both from the cache."""
    from open_clip.pretrained import download_pretrained_from_hf

    try:
        download_pretrained_from_hf(repo, filename="open_clip_config.json")
        file = Path(download_pretrained_from_hf(repo))
    except (OSError, RuntimeError) as e:
        raise _download_error(e, f"the open_clip model {repo}", name) from None
    return Weights(f"hf-hub:{repo}", None, (file,), f"hf-hub:{repo}", f"hf-hub:{repo}")


def _local_dir(folder: Path, name: str) -> Weights:
    """The weight files of a folder with open_clip_config.json (open_clip picks one of them; a change
    to any of them changes the hash)."""
    if not (folder / "open_clip_config.json").is_file():
        raise fail(f"{folder} holds no open_clip_config.json", name,
                   "pass a folder with open_clip_config.json and its weights (an open_clip hub repo's files)")
    weights = sorted(p.resolve() for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pth"))
    if not weights:
        raise fail(f"{folder} holds no weights (.safetensors, .bin, .pth)", name,
                   "put the model's weights beside open_clip_config.json")
    folder = folder.resolve()
    return Weights(f"local-dir:{folder}", None, tuple(weights), f"local-dir:{folder.name}", str(folder))


def _download_error(e: BaseException, what: str, name: str):
    """The one line for a download that failed: offline and not cached, no such repo, or the network.
    open_clip wraps huggingface_hub's error in its own, so the chain is searched."""
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError

    chain, seen = [], e
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    if any(isinstance(c, RepositoryNotFoundError) for c in chain):
        return fail(f"{what}: no such repo on the hub, or it is private or gated", name,
                    "check the name, or set HF_TOKEN to a token that may read it")
    if any(isinstance(c, (LocalEntryNotFoundError, OfflineModeIsEnabled)) for c in chain):
        if constants.HF_HUB_OFFLINE:
            return fail(f"{what}: not in the hub cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE=1 forbids "
                        "downloading", name, "unset HF_HUB_OFFLINE to download once (same HF_HOME), "
                        "or pass a local weights file")
        return fail(f"{what}: cannot reach the hub and not in the hub cache", name,
                    "check the network (HF_ENDPOINT), or pass a local weights file")
    return fail(f"cannot download {what} ({brief(chain[-1])})", name, "check the network and the name")
