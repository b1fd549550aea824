"""Build the towers, the tokenizer and the model from a training config.

A tower whose `pretrained` names a hub id or a folder is loaded with transformers through
`focusclip.core.hub` (downloaded and cached online, from the cache offline, one-line error when it
cannot be had); `pretrained: null` is the only way to random init. The text tower's tokenizer comes
with it; a random-init text tower gets a WordPiece tokenizer trained on the training descriptions.
`resolve_sources` checks every tower without downloading (for `--check`); `load_pretrained` loads them
before any data work, so a missing tower costs seconds, not a data pass. This module imports torch
only inside its functions, so `focus-train --check` stays quick.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from focusclip.core.hub import RANDOM, Source, load, resolve
from focusclip.training.config import FocusConfig

TOWERS = {"vision": ("vision tower", "model.vision"), "text": ("text tower", "model.text")}


def _null_fix(prefix: str) -> str:
    return f"--set {prefix}.pretrained=null for a deliberate random init"


def resolve_sources(cfg: FocusConfig) -> dict[str, Source]:
    """{"vision": Source, "text": Source}: where each tower's initial weights come from; raises the
    one-line error of the first tower that cannot be loaded."""
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
    notes: dict = field(default_factory=dict)


def load_pretrained(cfg: FocusConfig, sources: Optional[dict[str, Source]] = None) -> Pretrained:
    """Resolve (unless given) and load every pretrained tower and the text tower's tokenizer."""
    from transformers import AutoModel, AutoTokenizer

    import focusclip.training.vit  # noqa: F401  (registers model_type focusclip_vit with AutoModel)

    sources = sources or resolve_sources(cfg)
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

    vit = pre.vit if pre is not None and pre.vit is not None else _random_vit(cfg)
    text = pre.text if pre is not None and pre.text is not None else _random_text(cfg, tokenizer)
    m, v = cfg.model, cfg.model.vision
    max_len = min(cfg.data.max_text_length, int(text.config.max_position_embeddings))
    return FocusCLIPModel.from_towers(vit, text, name=m.name, embed_dim=m.embed_dim, triple=m.triple,
                                      shared_encoder=m.shared_encoder, alpha_init=m.alpha_init,
                                      image_size=cfg.train.image_size, image_mean=v.image_mean,
                                      image_std=v.image_std, max_text_length=max_len,
                                      temperature=cfg.loss.temperature,
                                      learn_temperature=cfg.loss.learn_temperature,
                                      temperature_per_pair=cfg.loss.temperature_per_pair,
                                      alpha_trainable=m.alpha_trainable)
