"""Tiny random models saved the way users have them: a focus-train checkpoint (through the training
package's own save function) and a Hugging Face CLIP folder (config, weights, tokenizer, processor)."""
from __future__ import annotations

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


def save_tiny_hf_clip(folder: Path, image_size: int = 32) -> Path:
    """A random CLIPModel with a word-level tokenizer over the task prompts, saved with save_pretrained."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import CLIPConfig, CLIPModel, PreTrainedTokenizerFast

    words = sorted({w for p in all_prompts() for w in p.lower().replace(".", " ").split()})
    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]").save_pretrained(folder)
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 64,
                     "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2},
        vision_config={"image_size": image_size, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
                       "num_hidden_layers": 1, "num_attention_heads": 2},
        projection_dim=16)
    CLIPModel(config).save_pretrained(folder)
    _processor(image_size).save_pretrained(folder)
    return folder


def _processor(size: int):
    try:
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:
        from transformers import CLIPImageProcessor as Processor
    return Processor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
