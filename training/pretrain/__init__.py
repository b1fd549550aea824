"""Tower pretraining before contrastive training: the paper's regime (an ImageNet ViT, BERT) in miniature.

    focus-train pretrain-vision configs/mini-towers.yaml [-o DIR]   # SimMIM on the training images
    focus-train pretrain-text   configs/mini-towers.yaml [-o DIR]   # MLM on the training descriptions

Each writes a plain `save_pretrained` folder that a training config names as `model.vision.pretrained`
/ `model.text.pretrained`, so it loads through the same code path as a hub id. Neither objective reads
an activity label. A rerun with the same options reuses the finished tower; an interrupted one
continues from its last saved state (`DIR.incomplete/`).
"""
from focusclip.training.pretrain.config import PretrainConfig, load_pretrain_config
from focusclip.training.pretrain.stage import run_pretrain

__all__ = ["run_pretrain", "load_pretrain_config", "PretrainConfig"]
