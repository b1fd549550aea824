"""Descriptions longer than the text tower's context (CLIP: 77 tokens; a pose description of two or
three people runs to a few hundred), `data.long_text`:

  truncate  the tokenizer keeps the first tokens (the reference; BERT's 512 tokens hold nearly all)
  chunk     each long description becomes its sentence-aligned chunks: consecutive whole sentences,
            as many as fit the context, every sentence in exactly one chunk (a single sentence longer
            than the context is a chunk of its own, truncated). The chunks replace the description
            among the image's descriptions, from which the data loader draws one per step (seeded by
            seed, epoch and index, training/data.py), so over the epochs the encoder sees every part
            of a description, each step a grammatical, untruncated text. Validation takes the first.

Why chunks: truncation at 77 tokens keeps the count-and-activity sentence and the first person, and
drops every other person for the whole run; averaging embeddings of all chunks costs a text forward
per chunk each step; stretching position embeddings (Long-CLIP) changes the base model, which the
export as the base class would then not reproduce. A chunk is text the base model was trained on.
Each image keeps its describers' weight only approximately: a description of K chunks counts K times
among the image's descriptions (the report says how many descriptions did not fit).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Sequence

LONG_TEXT = ("truncate", "chunk")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str) -> list[str]:
    """The sentences of `text`, split after . ! or ? followed by white space."""
    return [s for s in _SENTENCE.split(text.strip()) if s]


def token_count(tokenizer, texts: Sequence[str]) -> list[int]:
    """Tokens each text takes in the encoder's input, special tokens included."""
    if not texts:
        return []
    ids = tokenizer(list(texts), add_special_tokens=True, truncation=False, return_attention_mask=False,
                    return_token_type_ids=False)["input_ids"]
    return [len(i) for i in ids]


def chunk_text(text: str, tokenizer, max_tokens: int) -> list[str]:
    """`text` as consecutive runs of whole sentences, each within `max_tokens` (special tokens
    included), greedily from the first; [text] when it fits."""
    if token_count(tokenizer, [text])[0] <= max_tokens:
        return [text]
    parts = sentences(text)
    chunks: list[str] = []
    current: list[str] = []
    for s in parts:
        trial = " ".join(current + [s])
        if current and token_count(tokenizer, [trial])[0] > max_tokens:
            chunks.append(" ".join(current))
            current = [s]
        else:
            current.append(s)
    chunks.append(" ".join(current))
    return chunks


def fit_items(items: list, tokenizer, max_tokens: int, policy: str) -> tuple[list, dict[str, int]]:
    """(items with `policy` applied to their descriptions, counts): `descriptions`, `too_long` (more
    tokens than `max_tokens`), and under chunk `chunks` (what the too-long ones became)."""
    assert policy in LONG_TEXT, f"unknown long-text policy {policy}"
    texts = sorted({t for it in items for t in it.descriptions})
    fits = {t: n <= max_tokens for t, n in zip(texts, token_count(tokenizer, texts))}
    counts = {"descriptions": len(texts), "too_long": sum(not f for f in fits.values())}
    if policy == "truncate" or not counts["too_long"]:
        return items, counts
    chunked = {t: chunk_text(t, tokenizer, max_tokens) for t, f in fits.items() if not f}
    counts["chunks"] = sum(len(c) for c in chunked.values())
    out = []
    for it in items:
        desc, who = [], []
        for text, describer in zip(it.descriptions, it.describers or [None] * len(it.descriptions)):
            parts = chunked.get(text, [text])
            desc += parts
            who += [describer] * len(parts)
        out.append(dataclasses.replace(it, descriptions=tuple(desc),
                                       describers=tuple(who) if it.describers else it.describers))
    return out, counts


def fit_long_texts(cfg, tokenizer, max_tokens: int, train_set, val_set) -> dict[str, int]:
    """`data.long_text` applied to the datasets' items in place; the training set's counts (report.json)."""
    train_set.items, counts = fit_items(train_set.items, tokenizer, max_tokens, cfg.data.long_text)
    if val_set is not None:
        val_set.items, _ = fit_items(val_set.items, tokenizer, max_tokens, cfg.data.long_text)
    return counts
