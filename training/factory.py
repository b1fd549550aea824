"""Build the tokenizer and the model from a training config: local/cached pretrained weights when the
config names them (always `local_files_only=True`, never a download), else random init with a
WordPiece tokenizer trained on the training descriptions."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from focusclip.data.errors import fail
from focusclip.training.config import FocusConfig, TextConfig
from focusclip.training.model import FocusCLIP
from focusclip.training.text import load_pretrained_tokenizer, train_wordpiece


def _is_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or Path(name).exists()


def _check_local(name: str, key: str) -> None:
    if _is_path(name) and not Path(name).expanduser().exists():
        raise fail(f"{key} names a local path that does not exist: {name}", "config",
                   f"fix the path or --set {key}=null for random init")


def build_tokenizer(text: TextConfig, texts: Iterable[str]):
    """(tokenizer, note). The pretrained model's tokenizer when it is local/cached, else WordPiece
    with `text.vocab_size` entries trained on `texts`."""
    if text.pretrained:
        _check_local(text.pretrained, "model.text.pretrained")
        tok = load_pretrained_tokenizer(str(Path(text.pretrained).expanduser()) if _is_path(text.pretrained)
                                        else text.pretrained)
        if tok is not None:
            return tok, f"pretrained tokenizer {text.pretrained}"
    tok = train_wordpiece(texts, text.vocab_size, text.lowercase)
    return tok, f"WordPiece ({len(tok)} tokens) trained on the training descriptions"


def _vision(cfg: FocusConfig):
    from transformers import ViTConfig, ViTModel

    v = cfg.model.vision
    if v.pretrained:
        _check_local(v.pretrained, "model.vision.pretrained")
        try:
            return (ViTModel.from_pretrained(v.pretrained, local_files_only=True, add_pooling_layer=False),
                    f"pretrained {v.pretrained}")
        except (OSError, ValueError):
            if _is_path(v.pretrained):
                raise fail("not a ViT checkpoint folder", v.pretrained, "pass a folder saved with save_pretrained")
    config = ViTConfig(hidden_size=v.hidden_size, num_hidden_layers=v.num_layers,
                       num_attention_heads=v.num_heads, intermediate_size=v.intermediate_size,
                       image_size=cfg.train.image_size, patch_size=v.patch_size, num_channels=3,
                       hidden_dropout_prob=v.dropout, attention_probs_dropout_prob=v.dropout)
    why = f" ({v.pretrained} is not in the local Hugging Face cache)" if v.pretrained else ""
    return ViTModel(config, add_pooling_layer=False), "random init" + why


def _text(cfg: FocusConfig, tokenizer):
    from transformers import AutoModel, BertConfig, BertModel

    t = cfg.model.text
    if t.pretrained:
        _check_local(t.pretrained, "model.text.pretrained")
        try:
            try:
                model = AutoModel.from_pretrained(t.pretrained, local_files_only=True, add_pooling_layer=False)
            except TypeError:
                model = AutoModel.from_pretrained(t.pretrained, local_files_only=True)
            return model, f"pretrained {t.pretrained}"
        except (OSError, ValueError):
            if _is_path(t.pretrained):
                raise fail("not a text-encoder checkpoint folder", t.pretrained,
                           "pass a folder saved with save_pretrained")
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=t.hidden_size, num_hidden_layers=t.num_layers,
                        num_attention_heads=t.num_heads, intermediate_size=t.intermediate_size,
                        max_position_embeddings=max(512, cfg.data.max_text_length),
                        hidden_dropout_prob=t.dropout, attention_probs_dropout_prob=t.dropout,
                        pad_token_id=tokenizer.pad_token_id)
    why = f" ({t.pretrained} is not in the local Hugging Face cache)" if t.pretrained else ""
    return BertModel(config, add_pooling_layer=False), "random init" + why


def build_model(cfg: FocusConfig, tokenizer) -> tuple[FocusCLIP, dict]:
    """(model, notes): notes say where each tower's weights came from (saved in the report)."""
    vit, vnote = _vision(cfg)
    text, tnote = _text(cfg, tokenizer)
    m, v = cfg.model, cfg.model.vision
    max_len = min(cfg.data.max_text_length, int(text.config.max_position_embeddings))
    model = FocusCLIP(vit, text, name=m.name, embed_dim=m.embed_dim, triple=m.triple,
                      shared_encoder=m.shared_encoder, alpha_init=m.alpha_init,
                      image_size=cfg.train.image_size, image_mean=v.image_mean, image_std=v.image_std,
                      max_text_length=max_len, temperature=cfg.loss.temperature,
                      learn_temperature=cfg.loss.learn_temperature)
    return model, {"vision": vnote, "text": tnote}
