"""The training config (docs/design.md §3.7): frozen dataclasses loaded from YAML, `--set a.b=c` overrides.

Unknown keys and wrong types are user errors naming the dotted key. Relative paths in `data.*` and
`output_dir` resolve against the current working directory (not the YAML's folder), so
`focus-train configs/tiny-focusclip.yaml` run from the repo root reads `out/…` under the repo root.
A recipe names its model size with `architecture: models/NAME.yaml` (relative to the recipe's folder,
open_clip's model configs): the towers, the embedding width, the image side and the text length, laid
under the recipe's own keys and `--set`; the resolved config holds them all and no `architecture` key.
This module imports no torch, so the CLI checks a config in well under a second.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import yaml

from focusclip.core.errors import fail
from focusclip.core.preflight import writable_dir


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "out/published"          # publish folder (§3.4), descriptions JSONL/folder, or original JSON
    describers: tuple[str, ...] = ()        # which describers to draw from; () = all found
    annotations: Optional[str] = None       # annotations.jsonl (needed with descriptions JSONL)
    images: Optional[str] = None            # image folder (names in the records are relative to it)
    heatmaps: str = "render"                # folder of <stem>.png, `render` (on the fly from kpts), or
                                            # `embedded` (the published folder's heatmap column)
    missing_heatmaps: Literal["error", "render"] = "error"   # a folder lacking some PNGs: stop, or draw
                                            # those from the keypoints (counted in report.json)
    heatmap_mode: Literal["parts", "person"] = "parts"
    min_sigma: float = 1.0
    resize: Literal["squash", "letterbox", "crop"] = "squash"   # frame → S×S (training/transforms.py):
                                            # squash = the reference (whole frame), letterbox, crop
    flip: bool = False                      # off: descriptions name left and right
    uniform_heatmap: bool = False           # control: each heatmap replaced by its own mean value (the
                                            # weighted view keeps its brightness, loses its focus)
    random_crop: bool = False               # resize: crop only; train crop offset random (else centre)
    max_text_length: int = 512
    long_text: Literal["truncate", "chunk"] = "truncate"   # a description over the text context: cut, or
                                            # its sentence-aligned chunks, one drawn per step (training/long_text.py)
    padding: Literal["longest", "max_length"] = "longest"   # dynamic padding, or always max_text_length
    train_split: str = "train"
    val_split: str = "val"
    limit: Optional[int] = None             # use only the first N training images (smoke runs)
    prepared: Optional[str] = None          # a folder for the prepared set (images and heatmaps decoded
                                            # once at training size; built or completed before training);
                                            # null: decode the source files every step
    prepared_shard: int = 1024              # images per prepared shard


STEMS = ("patch", "conv")
POOLINGS = ("cls", "mean")


def conv_stem_channels(patch_size: int, hidden_size: int, channels: Sequence[int] = ()) -> list[int]:
    """The widths of the stem's convolutions before the last one: `channels` when given, else
    halving back from `hidden_size` (patch 8, hidden 64 → [16, 32]); raises ValueError when the
    patch size is not the stem's stride (2 ** number of convolutions)."""
    n = round(math.log2(patch_size)) if patch_size > 1 else 0
    if patch_size < 2 or 2 ** n != patch_size:
        raise ValueError(f"a convolutional stem needs a power-of-two patch size, got {patch_size}")
    channels = [int(c) for c in channels] or [max(8, hidden_size >> (n - i)) for i in range(1, n)]
    if len(channels) != n - 1:
        raise ValueError(f"patch size {patch_size} is {n} stride-2 convolutions: stem_channels needs "
                         f"{n - 1} widths, got {len(channels)}")
    return channels


@dataclass(frozen=True)
class VisionConfig:
    pretrained: Optional[str] = None        # a hub id (downloaded and cached), a save_pretrained folder,
                                            # or null: random init with the shape below
    revision: Optional[str] = None          # hub branch, tag or commit (null: the default branch)
    patch_size: int = 16
    stem: Literal["patch", "conv"] = "patch"   # random init: ViT's P×P patch projection, or log2(P)
                                            # 3×3 stride-2 convolutions with batch norm (training/vit.py)
    stem_channels: tuple[int, ...] = ()     # conv stem: widths before the last one (() = halving back)
    pooling: Literal["cls", "mean"] = "cls"  # random init: the [CLS] token, or the mean of the patch tokens
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    dropout: float = 0.0
    init_std: float = 0.02                  # random init: std of the weights (ViT's initializer_range)
    image_mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    image_std: tuple[float, ...] = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class TextConfig:
    pretrained: Optional[str] = None        # a hub id, a folder, or null: random init + WordPiece tokenizer
    revision: Optional[str] = None          # hub branch, tag or commit (null: the default branch)
    vocab_size: int = 30522                 # of the WordPiece tokenizer trained on the descriptions
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    dropout: float = 0.1
    init_std: float = 0.02                  # random init: std of the weights (BERT's initializer_range)
    lowercase: bool = True


@dataclass(frozen=True)
class ModelConfig:
    name: str = "focusclip"
    init: Optional[str] = None              # a pretrained dual encoder to fine-tune (hub id or folder:
                                            # CLIPModel, SiglipModel, a focus-train checkpoint): its towers,
                                            # projections, logit scale (and bias), image processor and
                                            # tokenizer; vision/text/embed_dim below are then unused
    init_revision: Optional[str] = None     # hub branch, tag or commit of model.init
    lock_image: bool = False                # freeze the image tower (and its projection) …
    lock_image_unlocked_layers: int = 0     # … but for its last N transformer layers and what follows them
    lock_text: bool = False                 # the same for the text tower
    lock_text_unlocked_layers: int = 0
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    embed_dim: int = 512
    triple: bool = True                     # the heatmap-masked image branch (false = CLIP baseline)
    shared_encoder: bool = True             # masked branch reuses the image encoder
    alpha_init: float = 0.5                 # alpha = sigmoid(logit), logit starts at logit(alpha_init)
    alpha_trainable: bool = True            # false: alpha stays alpha_init (0 and 1 allowed), a control


@dataclass(frozen=True)
class Architecture:
    """A model size (configs/models/*.yaml): what a recipe's `architecture:` brings, keyed as below;
    ARCHITECTURE_PLACES says where each key lands in the training config."""
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    embed_dim: int = 512
    image_size: int = 224
    max_text_length: int = 512


# where each key of an architecture file lands in the training config
ARCHITECTURE_PLACES = {"vision": "model.vision", "text": "model.text", "embed_dim": "model.embed_dim",
                       "image_size": "train.image_size", "max_text_length": "data.max_text_length"}


@dataclass(frozen=True)
class LossWeights:
    image_text: float = 1.0
    masked_image: float = 1.0
    masked_text: float = 1.0


@dataclass(frozen=True)
class LossConfig:
    kind: Literal["ntxent", "clip", "siglip"] = "ntxent"   # siglip: the model's logit bias (model.init: a SigLIP)
    temperature: float = 0.5
    learn_temperature: bool = False
    temperature_per_pair: bool = False      # learnt τ: one per pair (image_text, masked_image,
                                            # masked_text), each started at `temperature`; false: one shared
    weights: LossWeights = field(default_factory=LossWeights)


@dataclass(frozen=True)
class OptimConfig:
    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.0005
    momentum: float = 0.9
    weight_decay: float = 0.0
    betas: tuple[float, ...] = (0.9, 0.999)
    scheduler: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0               # cosine decays to lr * min_lr_ratio
    grad_clip: float = 1.0                  # max global grad norm; 0 disables


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 64
    batch_size: int = 32                    # global: summed over processes and accumulation steps
    grad_accum: int = 1
    image_size: int = 224
    num_workers: int = 4
    seed: int = 42
    device: str = "auto"                    # auto, cpu, cuda or cuda:N (one process; torchrun: LOCAL_RANK)
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"   # auto: bf16 autocast on GPUs with
                                            # native bf16, fp16 + grad scaler on older GPUs, fp32 on CPU
    log_every: int = 1                      # a metric row (and the one host read of the step numbers)
                                            # every N optimizer steps: means over those steps
    prefetch: int = 4                       # batches each data worker keeps ready
    checkpoint_every: int = 500             # optimizer steps; 0 = only at the end of training
    keep_checkpoints: int = 3               # numbered checkpoints kept (0 = all); `last` always
    val_batches: Optional[int] = None       # cap validation batches per epoch (None = all)
    val_every: int = 0                      # also validate every N optimizer steps (0: at each epoch's end only)
    max_steps: Optional[int] = None         # optimizer steps of the run; overrides epochs (as the HF Trainer)
    log_to: tuple[Literal["jsonl", "tensorboard", "wandb"], ...] = ("jsonl",)   # jsonl is always written


@dataclass(frozen=True)
class FocusConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output_dir: str = "runs/focusclip"


# ---------------------------------------------------------------------------------------------
# loading


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> FocusConfig:
    """The training config at `path`, with `--set` overrides (`load_yaml_config`)."""
    return load_yaml_config(path, overrides, FocusConfig, "configs/focusclip.yaml", ARCHITECTURE_PLACES)


def load_yaml_config(path: str | Path, overrides: list[str] | tuple[str, ...], config_class: type,
                     example: str, places: dict[str, str]) -> Any:
    """Read a YAML config, apply `a.b=value` overrides (values parsed as YAML), lay the result over the
    architecture file it names (`places`: where each of that file's keys lands), build `config_class`."""
    raw = read_yaml_mapping(path, example)
    for item in overrides:
        check_override_key(item, config_class)   # a typo in --set is blamed on --set, not on the file
        apply_override(raw, item)
    if "architecture" in raw:
        raw = merge(architecture_layer(raw.pop("architecture"), Path(path), places), raw)
    return build(config_class, raw, where=str(path))


def architecture_layer(name: Any, recipe: Path, places: dict[str, str]) -> dict:
    """The architecture file `name` (relative to the recipe's folder), checked as an `Architecture`,
    as a nested mapping with each of its keys at its place (keys without a place are dropped)."""
    if not isinstance(name, str) or not name.strip():
        raise fail(f"'architecture' must name a YAML file, got {name!r}", str(recipe),
                   "e.g. architecture: models/mini.yaml")
    path = recipe.parent / name
    if not path.is_file():
        raise fail(f"architecture file not found: {path}", str(recipe),
                   "name a file under configs/models/, relative to the recipe's folder")
    raw = read_yaml_mapping(path, "configs/models/mini.yaml")
    build(Architecture, raw, where=str(path))   # unknown keys and wrong types name this file
    layer: dict = {}
    for key, value in raw.items():
        if key in places:
            for part in reversed(places[key].split(".")):   # "model.vision" → {"model": {"vision": value}}
                value = {part: value}
            layer = merge(layer, value)
    return layer


def merge(base: dict, over: dict) -> dict:
    """`over` laid on `base`: mappings merged key by key, any other value replaced."""
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merge(out[key], value) if both else value
    return out


def read_yaml_mapping(path: str | Path, example: str) -> dict:
    """A config file's top-level mapping; a missing, non-UTF-8, non-YAML or non-mapping file is one
    line naming it (`example`: the config to point the user at)."""
    path = Path(path)
    if not path.is_file():
        raise fail("config file not found", str(path), f"pass a YAML file such as {example}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise fail(f"is not UTF-8 text (byte {e.start})", str(path), "save the config as UTF-8") from None
    except yaml.YAMLError as e:
        raise fail(f"not valid YAML ({' '.join(str(e).split())})", str(path), "fix the YAML syntax") from None
    except RecursionError:   # yaml recurses once per nesting level: a hostile file of [[[[…
        raise fail("nested too deeply to be a config (a damaged or hostile file)", str(path),
                   f"pass a YAML file such as {example}") from None
    if not isinstance(raw, dict):
        raise fail("top level must be a mapping", str(path), f"see {example}")
    return raw


def apply_override(raw: dict, item: str) -> None:
    """`data.heatmaps=render` → raw["data"]["heatmaps"] = "render" (value parsed as YAML)."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise fail(f"override '{item}' is not KEY=VALUE", "--set", "write e.g. --set train.epochs=2")
    parts = key.strip().split(".")
    node = raw
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise fail(f"'{key}' goes through a non-mapping value", "--set", "check the key path")
    try:
        node[parts[-1]] = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        node[parts[-1]] = value


def check_override_key(item: str, config_class: type) -> None:
    """The key of `--set KEY=VALUE` names a field of `config_class` (or `architecture`), else one line
    blaming --set, with the nearest known key. The key path is checked as far as it goes through
    nested configs; a value's type is checked later, with the rest of the config."""
    key = item.partition("=")[0].strip()
    cls, parts = config_class, key.split(".")
    if parts == ["architecture"]:
        return
    for i, part in enumerate(parts):
        if not dataclasses.is_dataclass(cls):
            return
        fields = {f.name for f in dataclasses.fields(cls)}
        if part not in fields:
            raise fail(f"unknown key '{key}'", "--set", _known(part, fields, ".".join(parts[:i])))
        cls = _inner(typing.get_type_hints(cls)[part])


def _inner(tp: Any) -> Any:
    """`X | None` → X."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


def _known(key: str, fields: set[str], prefix: str = "") -> str:
    """'did you mean …? known keys here: …' for an unknown `key` among `fields` (difflib's nearest)."""
    close = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
    dot = f"{prefix}." if prefix else ""
    mean = f"did you mean '{dot}{close[0]}'? " if close else ""
    return f"{mean}known keys {'under ' + prefix if prefix else 'here'}: {', '.join(sorted(fields))}"


def build(cls: type, raw: Any, where: str, prefix: str = "") -> Any:
    """Build dataclass `cls` from a mapping, checking every key and type."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise fail(f"'{prefix or 'config'}' must be a mapping, got {type(raw).__name__}", where,
                   "see configs/focusclip.yaml")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            raise fail(f"unknown key '{prefix}{key}'", where, _known(str(key), set(fields), prefix.rstrip(".")))
    kwargs = {k: _coerce(hints[k], v, where, f"{prefix}{k}") for k, v in raw.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str, key: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where, prefix=key + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where, key)
    if origin is Literal:
        if value not in args:
            raise fail(f"'{key}' is {value!r}, not one of {', '.join(map(str, args))}", where,
                       "use one of the listed values")
        return value
    if origin is tuple:
        if isinstance(value, (str, int, float)) and (args[0] is str or typing.get_origin(args[0]) is Literal):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise _type_error(key, "a list", value, where)
        return tuple(_coerce(args[0], v, where, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise _type_error(key, "true or false", value, where)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(key, "an integer", value, where)
        return value
    if tp is float:
        if isinstance(value, str):   # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(key, "a number", value, where)
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise _type_error(key, "a string", value, where)
        return str(value)
    raise AssertionError(f"unhandled config type {tp} for {key}")


def _type_error(key: str, want: str, value: Any, where: str):
    return fail(f"'{key}' must be {want}, got {value!r}", where, "fix the value in the YAML or --set")


def to_dict(cfg: Any) -> dict:
    """Plain nested dict (tuples as lists) for YAML/JSON."""
    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(dataclasses.asdict(cfg))


def to_yaml(cfg: FocusConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def check_config(cfg: FocusConfig, where: str = "config") -> None:
    """Checks across keys and on the file system, done before any training starts."""
    from focusclip.core.hub_repo import names_hub_repo

    d, t = cfg.data, cfg.train
    writable_dir(cfg.output_dir, "output_dir")
    if not Path(d.dataset).exists() and not names_hub_repo(d.dataset):
        raise fail(f"data.dataset does not exist: {d.dataset}", where,
                   "build it with `focus-data publish`/`describe`, or --set data.dataset=PATH or a hub "
                   "dataset id USER/NAME (relative paths resolve against the current directory)")
    for key in ("annotations", "images"):
        value = getattr(d, key)
        if value is not None and not Path(value).exists():
            raise fail(f"data.{key} does not exist: {value}", where,
                       f"fix the path or --set data.{key}=PATH (relative to the current directory)")
    if d.heatmaps not in ("render", "embedded") and not Path(d.heatmaps).is_dir():
        raise fail(f"data.heatmaps is not 'render', 'embedded' or a folder: {d.heatmaps}", where,
                   "run `focus-data heatmaps` or --set data.heatmaps=render")
    if d.prepared is not None:
        writable_dir(d.prepared, "data.prepared")
        if d.prepared_shard < 1:
            raise fail("data.prepared_shard must be at least 1", where, "e.g. 1024")
    if d.random_crop and d.resize != "crop":
        raise fail(f"data.random_crop needs data.resize: crop (it is {d.resize})", where,
                   "--set data.resize=crop, or --set data.random_crop=false")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", t.device):
        raise fail(f"train.device is {t.device!r}, not auto, cpu, cuda or cuda:N", where, "e.g. --set train.device=cuda:1")
    for key in ("epochs", "batch_size", "grad_accum", "image_size", "log_every", "prefetch"):
        if getattr(t, key) < 1:
            raise fail(f"train.{key} must be at least 1", where, "fix the value")
    if t.val_every < 0:
        raise fail("train.val_every must be 0 (each epoch's end) or a number of steps", where, "fix the value")
    v = cfg.model.vision
    if v.stem == "conv":
        try:
            conv_stem_channels(v.patch_size, v.hidden_size, v.stem_channels)
        except ValueError as e:
            raise fail(f"model.vision.stem is conv but {e}", where,
                       "use patch_size 2, 4, 8, 16 … and one stem_channels width per convolution but the last")
    if not cfg.model.init and t.image_size % cfg.model.vision.patch_size:   # model.init: its processor's size
        raise fail(f"train.image_size {t.image_size} is not a multiple of model.vision.patch_size "
                   f"{cfg.model.vision.patch_size}", where, "change one of them")
    if cfg.model.alpha_trainable and not 0.0 < cfg.model.alpha_init < 1.0:
        raise fail("model.alpha_init must lie strictly between 0 and 1", where,
                   "e.g. 0.5; 0 or 1 only with model.alpha_trainable: false")
    if not 0.0 <= cfg.model.alpha_init <= 1.0:
        raise fail("model.alpha_init must lie between 0 and 1", where, "e.g. 0.5")
    if cfg.loss.temperature <= 0:
        raise fail("loss.temperature must be positive", where, "the paper uses 0.5")
    if cfg.loss.temperature_per_pair and not cfg.loss.learn_temperature:
        raise fail("loss.temperature_per_pair needs loss.learn_temperature: true (a fixed τ is one value)", where,
                   "--set loss.learn_temperature=true, or drop loss.temperature_per_pair")
    m = cfg.model
    if m.init_revision and not m.init:
        raise fail("model.init_revision is set but model.init is null", where,
                   "name the hub id in model.init, or drop the revision")
    if m.init and (m.vision.pretrained or m.text.pretrained):
        raise fail("model.init names a whole dual encoder, and model.vision/text.pretrained name towers too", where,
                   "use one: model.init, or the two towers")
    if m.init and not m.shared_encoder:
        raise fail("model.init fine-tunes one image tower: the masked view goes through it", where,
                   "--set model.shared_encoder=true")
    for key in ("lock_image_unlocked_layers", "lock_text_unlocked_layers"):
        if getattr(m, key) < 0:
            raise fail(f"model.{key} must be 0 or more", where, "e.g. 2: the last two layers learn")
    if cfg.loss.kind == "siglip" and not m.init:
        raise fail("loss.kind siglip needs the logit bias of a pretrained SigLIP", where,
                   "--set model.init=<a SigLIP hub id or folder>, or loss.kind ntxent or clip")
    for name, n in (("vision", cfg.model.vision), ("text", cfg.model.text)):
        if n.revision and not n.pretrained:
            raise fail(f"model.{name}.revision is set but model.{name}.pretrained is null", where,
                       f"name the hub id in model.{name}.pretrained, or drop the revision")
        if n.hidden_size % n.num_heads:
            raise fail(f"model.{name}.hidden_size must be divisible by num_heads", where, "fix the shape")
    from focusclip.training.loggers import check_loggers

    check_loggers(t.log_to, where)
