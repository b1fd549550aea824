"""Build the towers, the tokenizer and the model from a training config.

A tower whose `pretrained` names a hub id or a folder is loaded with transformers through
`focusclip.core.hub` (downloaded and cached online, from the cache offline, one-line error when it
cannot be had); `pretrained: null` is the only way to random init. The text tower's tokenizer comes
with it; a random-init text tower gets a WordPiece tokenizer trained on the training descriptions.
`resolve_sources` checks every tower without downloading (for `--check`); `load_pretrained` loads them
before any data work, so a missing tower costs seconds, not a data pass. This module imports torch
only inside its functions, so `focus-train --check` stays quick.

`model.init` names a whole pretrained dual encoder instead (a `CLIPModel`, `SiglipModel`, … a
focus-train checkpoint fine-tuned from one, or one built from two towers, continued with its towers,
projections and τ), loaded the same way: both towers' sources are it, and
`with_init_processor` lays its image processor (size, resize, mean/std) and text length over the
config before any data is read, so training and evaluation see images and text as it was trained on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from focusclip.core.errors import fail
from focusclip.core.hub import RANDOM, Source, load, resolve
from focusclip.training.config import FocusConfig

TOWERS = {"vision": ("vision tower", "model.vision"), "text": ("text tower", "model.text")}


def _null_fix(prefix: str) -> str:
    return f"--set {prefix}.pretrained=null for a deliberate random init"


def resolve_sources(cfg: FocusConfig) -> dict[str, Source]:
    """{"vision": Source, "text": Source}: where each tower's initial weights come from; raises the
    one-line error of the first tower that cannot be loaded."""
    if cfg.model.init:
        src = resolve(cfg.model.init, cfg.model.init_revision, what="dual encoder", key="model.init",
                      null_fix="--set model.init=null to build the model from two towers")
        return {"vision": src, "text": src}
    out = {}
    for name, (what, prefix) in TOWERS.items():
        tower = getattr(cfg.model, name)
        out[name] = (resolve(tower.pretrained, tower.revision, what=what, key=f"{prefix}.pretrained",
                             null_fix=_null_fix(prefix)) if tower.pretrained else RANDOM)
    return out


@dataclass
class Pretrained:
    """The pretrained parts of a run, loaded before any data work (None where random init)."""
    sources: dict[str, Source]
    vit: Any = None
    text: Any = None
    tokenizer: Any = None
    dual: Any = None            # model.init: the dual encoder (CLIPModel, SiglipModel, …)
    focus: Any = None           # model.init: a focus-train checkpoint built from two towers
    processor: Optional[dict] = None   # model.init: its image processor's to_dict()
    text_mask: bool = True      # model.init: its tokenizer gives an attention mask (SigLIP's does not)
    notes: dict = field(default_factory=dict)


def load_pretrained(cfg: FocusConfig, sources: Optional[dict[str, Source]] = None) -> Pretrained:
    """Resolve (unless given) and load every pretrained tower and the text tower's tokenizer."""
    from transformers import AutoModel, AutoTokenizer

    import focusclip.training.vit  # noqa: F401  (registers model_type focusclip_vit with AutoModel)

    sources = sources or resolve_sources(cfg)
    if cfg.model.init:
        return _load_init(cfg, sources)
    pre = Pretrained(sources)
    v, t = sources["vision"], sources["text"]
    if v.kind != "random":
        what, prefix = TOWERS["vision"]
        pre.vit = load(v, AutoModel.from_pretrained, what=what, key=f"{prefix}.pretrained",
                       null_fix=_null_fix(prefix), add_pooling_layer=False)
    if t.kind != "random":
        what, prefix = TOWERS["text"]
        kw = dict(what=what, key=f"{prefix}.pretrained", null_fix=_null_fix(prefix))
        try:
            pre.text = load(t, AutoModel.from_pretrained, add_pooling_layer=False, **kw)
        except TypeError:   # encoders without a pooler option
            pre.text = load(t, AutoModel.from_pretrained, **kw)
        pre.tokenizer = load(t, AutoTokenizer.from_pretrained, what=f"{what}'s tokenizer",
                             key=f"{prefix}.pretrained", null_fix=_null_fix(prefix))
    return pre


def _load_init(cfg: FocusConfig, sources: dict[str, Source]) -> Pretrained:
    """model.init: the dual encoder, its tokenizer and its image processor. A focus-train checkpoint
    fine-tuned from one gives the dual encoder it holds."""
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    import focusclip.training.model  # noqa: F401  (registers model_type focusclip with AutoModel)

    src = sources["vision"]
    kw = dict(what="dual encoder", key="model.init", null_fix="--set model.init=null to build the model from two towers")
    model = load(src, AutoModel.from_pretrained, **kw)
    if getattr(model.config, "model_type", "") == "focusclip" and not model.config.base:
        tokenizer = load(src, AutoTokenizer.from_pretrained, **{**kw, "what": "checkpoint's tokenizer"})
        return Pretrained(sources, tokenizer=tokenizer, focus=model, processor=focus_processor(model.config, src))
    if getattr(model.config, "model_type", "") == "focusclip":
        processor = dict(model.config.base_processor or {})
        model = model.dual
    else:
        if not (callable(getattr(model, "get_image_features", None)) and callable(getattr(model, "get_text_features", None))):
            raise fail(f"{type(model).__name__} has no get_image_features/get_text_features: not a dual encoder",
                       "model.init", "name a CLIPModel, SiglipModel, … hub id or folder")
        processor = load(src, AutoImageProcessor.from_pretrained, **{**kw, "what": "dual encoder's image processor"}).to_dict()
    tokenizer = load(src, AutoTokenizer.from_pretrained, **{**kw, "what": "dual encoder's tokenizer"})
    text_mask = "attention_mask" in tokenizer.model_input_names
    if not text_mask:   # the loader pads with a mask (the model drops it again: FocusCLIPConfig.base_text_mask)
        tokenizer.model_input_names = [*tokenizer.model_input_names, "attention_mask"]
    return Pretrained(sources, tokenizer=tokenizer, dual=model, processor=processor, text_mask=text_mask)


def focus_processor(config, src: Source) -> dict:
    """What a focus-train checkpoint built from two towers takes as input, as a processor dict: its
    side, mean/std, and `focus_resize`, its train_config.yaml's data.resize (crop when it has none)."""
    import yaml

    from focusclip.core.hub import local_file

    path = local_file(src, "train_config.yaml")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path is not None else None
    data = raw.get("data") if isinstance(raw, dict) else None
    resize = data.get("resize", "crop") if isinstance(data, dict) else "crop"
    side = {"height": config.image_size, "width": config.image_size}
    return {"focus_resize": resize, "size": side, "crop_size": side, "do_center_crop": resize == "crop",
            "image_mean": list(config.image_mean), "image_std": list(config.image_std)}


def processor_geometry(processor: dict) -> tuple[int, str]:
    """(S, data.resize) of a transformers image processor's dict: a centre crop after resizing the
    shorter side (CLIP) is `crop`, a resize to S×S (SigLIP) is `squash`; a focus-train checkpoint's
    (`focus_processor`) says its own."""
    crop = bool(processor.get("do_center_crop"))
    size = (processor.get("crop_size") if crop else processor.get("size")) or {}
    side = size.get("height") or size.get("shortest_edge") or size.get("width")
    assert side, f"an image processor without a size: {processor}"
    return int(side), processor.get("focus_resize") or ("crop" if crop else "squash")


def init_config(cfg: FocusConfig, pre: Optional[Pretrained], saved_model=None) -> FocusConfig:
    """`with_init_processor` with the processor of the model.init just loaded (`pre`), or on resume
    the one the checkpoint's model keeps (`saved_model.config.base_processor`, model.init runs only)."""
    if pre is not None and pre.dual is not None:
        return with_init_processor(cfg, pre.processor, pre.dual.config.to_dict())
    if pre is not None and pre.focus is not None:
        text = {"text_config": {"max_position_embeddings": pre.focus.config.max_text_length}}
        return with_init_processor(cfg, pre.processor, text)
    config = getattr(saved_model, "config", None)
    if cfg.model.init and config is not None and getattr(config, "base_processor", None):
        base = config.base or {"text_config": {"max_position_embeddings": config.max_text_length}}
        return with_init_processor(cfg, config.base_processor, base)
    return cfg


def with_init_processor(cfg: FocusConfig, processor: Optional[dict], base: Optional[dict]) -> FocusConfig:
    """`cfg` with the model.init's image processor and text length laid over it: train.image_size,
    data.resize, model.vision.image_mean/std, and for SigLIP text padded to its full length (it pools the
    last position). Unchanged without model.init (`processor` None)."""
    import dataclasses

    if not processor:
        return cfg
    side, resize = processor_geometry(processor)
    vision = dataclasses.replace(cfg.model.vision, image_mean=tuple(float(x) for x in processor["image_mean"]),
                                 image_std=tuple(float(x) for x in processor["image_std"]))
    text = (base or {}).get("text_config") or {}
    max_len = min(cfg.data.max_text_length, int(text.get("max_position_embeddings", cfg.data.max_text_length)))
    siglip = "siglip" in str((base or {}).get("model_type", ""))
    data = dataclasses.replace(cfg.data, resize=resize, max_text_length=max_len,
                               padding="max_length" if siglip else cfg.data.padding,
                               random_crop=cfg.data.random_crop and resize == "crop")
    return dataclasses.replace(cfg, data=data, model=dataclasses.replace(cfg.model, vision=vision),
                               train=dataclasses.replace(cfg.train, image_size=side))


def build_tokenizer(cfg: FocusConfig, pre: Optional[Pretrained], texts: Iterable[str]):
    """(tokenizer, source): the text tower's own, else WordPiece with `model.text.vocab_size`
    entries trained on `texts` (the training descriptions)."""
    from focusclip.training.text import train_wordpiece

    if pre is not None and pre.tokenizer is not None:
        return pre.tokenizer, pre.sources["text"]
    text = cfg.model.text
    tok = train_wordpiece(texts, text.vocab_size, text.lowercase)
    return tok, Source("trained", note=f"WordPiece ({len(tok)} tokens) trained on the training descriptions")


def _random_vit(cfg: FocusConfig):
    """ViT's own model for the patch stem read out at [CLS] (what a hub ViT is), else the
    `focusclip_vit` one (training/vit.py)."""
    from transformers import ViTConfig, ViTModel

    from focusclip.training.vit import FocusViTConfig, FocusViTModel

    v = cfg.model.vision
    shape = dict(hidden_size=v.hidden_size, num_hidden_layers=v.num_layers,
                 num_attention_heads=v.num_heads, intermediate_size=v.intermediate_size,
                 image_size=cfg.train.image_size, patch_size=v.patch_size, num_channels=3,
                 hidden_dropout_prob=v.dropout, attention_probs_dropout_prob=v.dropout,
                 initializer_range=v.init_std)
    if v.stem == "patch" and v.pooling == "cls":
        return ViTModel(ViTConfig(**shape), add_pooling_layer=False)
    config = FocusViTConfig(stem=v.stem, stem_channels=v.stem_channels, pooling=v.pooling, **shape)
    return FocusViTModel(config, add_pooling_layer=False)


def _random_text(cfg: FocusConfig, tokenizer):
    from transformers import BertConfig, BertModel

    t = cfg.model.text
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=t.hidden_size, num_hidden_layers=t.num_layers,
                        num_attention_heads=t.num_heads, intermediate_size=t.intermediate_size,
                        max_position_embeddings=max(512, cfg.data.max_text_length),
                        hidden_dropout_prob=t.dropout, attention_probs_dropout_prob=t.dropout,
                        pad_token_id=tokenizer.pad_token_id, initializer_range=t.init_std)
    return BertModel(config, add_pooling_layer=False)


def build_model(cfg: FocusConfig, tokenizer, pre: Optional[Pretrained] = None):
    """The FocusCLIP/CLIP model: pretrained towers where `pre` holds them, random init (seeded by the
    caller) for the others, the projections and alpha always fresh."""
    from focusclip.training.model import FocusCLIPModel

    m = cfg.model
    if pre is not None and pre.dual is not None:
        text_len = int(pre.dual.config.text_config.max_position_embeddings)
        return FocusCLIPModel.from_dual(pre.dual, pre.processor, pre.text_mask, name=m.name, triple=m.triple, alpha_init=m.alpha_init,
                                        alpha_trainable=m.alpha_trainable, image_size=cfg.train.image_size,
                                        image_mean=m.vision.image_mean, image_std=m.vision.image_std,
                                        max_text_length=min(cfg.data.max_text_length, text_len))
    if pre is not None and pre.focus is not None:
        return _continued(cfg, pre)
    vit = pre.vit if pre is not None and pre.vit is not None else _random_vit(cfg)
    text = pre.text if pre is not None and pre.text is not None else _random_text(cfg, tokenizer)
    v = cfg.model.vision
    max_len = min(cfg.data.max_text_length, int(text.config.max_position_embeddings))
    return FocusCLIPModel.from_towers(vit, text, name=m.name, embed_dim=m.embed_dim, triple=m.triple,
                                      shared_encoder=m.shared_encoder, alpha_init=m.alpha_init,
                                      image_size=cfg.train.image_size, image_mean=v.image_mean,
                                      image_std=v.image_std, max_text_length=max_len,
                                      temperature=cfg.loss.temperature,
                                      learn_temperature=cfg.loss.learn_temperature,
                                      temperature_per_pair=cfg.loss.temperature_per_pair,
                                      alpha_trainable=m.alpha_trainable)


def _continued(cfg: FocusConfig, pre: Pretrained):
    """model.init naming a focus-train checkpoint built from two towers: its towers, projections and
    τ, in a model of this config's kind (FocusCLIP or CLIP, alpha fresh)."""
    from focusclip.training.model import FocusCLIPModel

    old, m = pre.focus, cfg.model
    model = FocusCLIPModel.from_towers(
        old.vision.vit, old.text.encoder, name=m.name, embed_dim=old.config.embed_dim, triple=m.triple,
        shared_encoder=True, alpha_init=m.alpha_init, alpha_trainable=m.alpha_trainable,
        image_size=old.config.image_size, image_mean=old.config.image_mean, image_std=old.config.image_std,
        max_text_length=min(cfg.data.max_text_length, old.config.max_text_length),
        temperature=old.config.contrastive_temperature, learn_temperature=cfg.loss.learn_temperature,
        temperature_per_pair=cfg.loss.temperature_per_pair)
    model.vision.proj.load_state_dict(old.vision.proj.state_dict())
    model.text.proj.load_state_dict(old.text.proj.state_dict())
    model.config.base_processor = pre.processor   # a resumed run reads its input geometry here
    return model
