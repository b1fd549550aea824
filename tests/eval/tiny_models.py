"""Tiny random models saved the way users have them: a focus-train checkpoint (through the training
package's own save function) and a Hugging Face CLIP folder (config, weights, tokenizer, processor)."""
from __future__ import annotations

import math
from pathlib import Path

from focusclip.eval.tasks import all_tasks


def all_prompts() -> list[str]:
    return [p for t in all_tasks() for row in t.prompts(ensemble=True) for p in row]


def save_tiny_checkpoint(run_dir: Path, step: int = 3, train_config: str = "model: {name: tiny-clip}\n") -> Path:
    """RUN/checkpoints/<step>/ and last/, written by training.checkpoint.save_checkpoint (whose
    train_config.yaml is `train_config`: its data.resize is the geometry evaluation uses)."""
    from transformers import BertConfig, BertModel, ViTConfig, ViTModel

    from focusclip.training.checkpoint import save_checkpoint
    from focusclip.training.model import FocusCLIPModel
    from focusclip.training.text import train_wordpiece

    tok = train_wordpiece(all_prompts(), vocab_size=400)
    vit = ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
                             num_attention_heads=2, intermediate_size=64), add_pooling_layer=False)
    bert = BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=64), add_pooling_layer=False)
    model = FocusCLIPModel.from_towers(vit, bert, name="tiny-clip",
                                       embed_dim=16, triple=False, image_size=32, max_text_length=64)
    return save_checkpoint(Path(run_dir), step, model, tok, train_config, {"step": step, "epoch": 0})


def save_word_tokenizer(folder: Path, input_names: tuple[str, ...] = ("input_ids", "attention_mask")) -> int:
    """A word-level tokenizer over the task prompts, made offline and saved; returns its vocabulary size.
    `input_names`: what it gives the model (SigLIP's tokenizer gives input_ids only)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for p in all_prompts() for w in p.lower().replace(".", " ").split()})
    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                            model_input_names=list(input_names)).save_pretrained(folder)
    return len(vocab)


def save_tiny_hf_clip(folder: Path, image_size: int = 32, seed: int = 0) -> Path:
    """A random CLIPModel with a word-level tokenizer over the task prompts, saved with save_pretrained."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    vocab = save_word_tokenizer(folder)
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={"vocab_size": vocab, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 64,
                     "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2},
        vision_config={"image_size": image_size, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
                       "num_hidden_layers": 1, "num_attention_heads": 2},
        projection_dim=16)
    CLIPModel(config).save_pretrained(folder)
    _processor(image_size).save_pretrained(folder)
    return folder


def save_tiny_siglip(folder: Path, image_size: int = 24, seed: int = 1) -> Path:
    """A random SiglipModel (sigmoid loss: logit_scale and logit_bias) with a word-level tokenizer that
    gives input_ids only, as SigLIP's does, and SigLIP's processor (squash to S×S, mean = std = 0.5)."""
    import torch
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel

    vocab = save_word_tokenizer(folder, input_names=("input_ids",))
    torch.manual_seed(seed)
    config = SiglipConfig(
        text_config={"vocab_size": vocab, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 64, "pad_token_id": 0},
        vision_config={"image_size": image_size, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
                       "num_hidden_layers": 1, "num_attention_heads": 2})
    model = SiglipModel(config)
    with torch.no_grad():                       # SigLIP's own init (log 10, -10), not 0 and 0
        model.logit_scale.fill_(math.log(10.0))
        model.logit_bias.fill_(-10.0)
    model.save_pretrained(folder)
    SiglipImageProcessorPil(size={"height": image_size, "width": image_size}).save_pretrained(folder)
    return folder


def _processor(size: int):
    try:
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:
        from transformers import CLIPImageProcessor as Processor
    return Processor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def save_tiny_siglip2(folder: Path, seed: int = 2) -> Path:
    """A random Siglip2Model (NaFlex: images cut into at most 16 patches of 8 px at their own aspect,
    with a patch mask and the grid's shape) with SigLIP's tokenizer convention (input_ids only)."""
    import torch
    from transformers import Siglip2Config, Siglip2ImageProcessorPil, Siglip2Model

    vocab = save_word_tokenizer(folder, input_names=("input_ids",))
    torch.manual_seed(seed)
    config = Siglip2Config(
        text_config={"vocab_size": vocab, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 64, "pad_token_id": 0},
        vision_config={"num_patches": 16, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
                       "num_hidden_layers": 1, "num_attention_heads": 2})
    model = Siglip2Model(config)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(10.0))
        model.logit_bias.fill_(-10.0)
    model.save_pretrained(folder)
    Siglip2ImageProcessorPil(patch_size=8, max_num_patches=16).save_pretrained(folder)
    return folder
