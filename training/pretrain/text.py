"""The text tower's pretraining: masked language modelling on the training descriptions (BERT's recipe).

The tokenizer is the WordPiece the contrastive run would train on the same descriptions
(`training/text.py`), saved with the tower, so a run that names this folder uses it unchanged. The
saved folder is a plain `BertModel` (`save_pretrained`, no pooler, no MLM head) and its tokenizer.
"""
from __future__ import annotations

from pathlib import Path

import torch

from focusclip.core.errors import fail
from focusclip.core.report import Report
from focusclip.training.pretrain.config import PretrainConfig
from focusclip.training.sources import load_items
from focusclip.training.text import train_wordpiece

VAL_TEXTS = 256


def mask_tokens(ids: torch.Tensor, real: torch.Tensor, tokenizer, prob: float,
                gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """ids, real [B, T] (real: 1 on tokens, 0 on padding) → (inputs, labels [B, T]). Each ordinary
    token is chosen with probability `prob`; a chosen one becomes [MASK] (80%), a random token (10%)
    or stays (10%); labels are the original ids where chosen, -100 elsewhere."""
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)))
    ordinary = real.bool() & ~torch.isin(ids, special)
    chosen = (torch.rand(ids.shape, generator=gen) < prob) & ordinary
    how = torch.rand(ids.shape, generator=gen)
    random_ids = torch.randint(len(tokenizer), ids.shape, generator=gen)
    inputs = torch.where(chosen & (how < 0.8), torch.full_like(ids, tokenizer.mask_token_id), ids)
    inputs = torch.where(chosen & (how >= 0.8) & (how < 0.9), random_ids, inputs)
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    return inputs, labels


def _descriptions(cfg: PretrainConfig, split: str, report: Report) -> list[str]:
    d = cfg.data
    items = load_items(d.dataset, d.describers, d.annotations, report)
    return [text for it in items if it.split == split for text in it.descriptions]


class MaskedLanguageModelling:
    """MLM over the tokenised training descriptions; a batch is padded to its longest description."""

    def __init__(self, cfg: PretrainConfig, report: Report):
        from transformers import BertConfig, BertForMaskedLM

        self.cfg = cfg
        texts = _descriptions(cfg, cfg.data.train_split, report)
        if not texts:
            raise fail(f"no '{cfg.data.train_split}' descriptions", cfg.data.dataset, "check data.dataset")
        val = _descriptions(cfg, cfg.data.val_split, report)[:VAL_TEXTS]
        report.count("train_descriptions", len(texts))
        report.count("val_descriptions", len(val))
        t = cfg.text
        self.tokenizer = train_wordpiece(texts, t.vocab_size, t.lowercase)
        encode = lambda xs: self.tokenizer(xs, truncation=True, max_length=cfg.mlm.max_length)["input_ids"]  # noqa: E731
        self.train, self.val = encode(texts), encode(val) if val else []
        torch.manual_seed(cfg.seed)
        self.model = BertForMaskedLM(BertConfig(
            vocab_size=len(self.tokenizer), hidden_size=t.hidden_size, num_hidden_layers=t.num_layers,
            num_attention_heads=t.num_heads, intermediate_size=t.intermediate_size,
            max_position_embeddings=max(512, cfg.data.max_text_length), hidden_dropout_prob=t.dropout,
            attention_probs_dropout_prob=t.dropout, pad_token_id=self.tokenizer.pad_token_id,
            initializer_range=t.init_std))

    def num_samples(self) -> int:
        return len(self.train)

    def _batch(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token id lists → ids, real [B, T] padded (right) to the longest."""
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        real = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
            real[i, :len(r)] = 1
        return ids, real

    def _out(self, rows: list[list[int]], gen: torch.Generator):
        ids, real = self._batch(rows)
        inputs, labels = mask_tokens(ids, real, self.tokenizer, self.cfg.mlm.mask_prob, gen)
        return self.model(input_ids=inputs, attention_mask=real, labels=labels), labels

    def loss(self, index: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return self._out([self.train[i] for i in index.tolist()], gen)[0].loss

    @torch.no_grad()
    def validate(self) -> dict:
        """Masked-token loss and accuracy on held-out descriptions (fixed masks)."""
        if not self.val:
            return {}
        self.model.eval()
        out, labels = self._out(self.val, torch.Generator().manual_seed(12345))
        chosen = labels >= 0
        acc = (out.logits.argmax(-1)[chosen] == labels[chosen]).float().mean()
        return {"val_mlm_loss": round(float(out.loss), 5), "val_mlm_accuracy": round(float(acc), 5)}

    def save(self, folder: Path) -> None:
        """The encoder alone as a plain BertModel folder, with the tokenizer beside it."""
        self.model.bert.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))
