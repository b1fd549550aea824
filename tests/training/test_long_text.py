"""Descriptions longer than the text context (data.long_text): the template describer's real pose
descriptions of the synthetic world's multi-person scenes, cut to sentence-aligned chunks that each fit
77 tokens, that together are the description, and that the loader draws from; the count of those that
did not fit."""
from __future__ import annotations

from focusclip.data.records import Annotation
from focusclip.data.synthetic.world import WorldConfig, training_scene
from focusclip.pipeline.describe.template import template_description
from focusclip.training.long_text import chunk_text, fit_items, sentences, token_count
from focusclip.training.sources import Item
from focusclip.training.text import train_wordpiece

CONTEXT = 77   # CLIP's


def _descriptions(n: int = 40) -> list[str]:
    out = []
    for i in range(n):
        rec, _ = training_scene(13, i, WorldConfig(bystanders=0))
        out.append(template_description(Annotation.from_dict(rec.to_dict())))
    return out


def test_chunks_fit_the_context_and_are_the_description():
    texts = _descriptions()
    tok = train_wordpiece(texts, 400)
    lengths = token_count(tok, texts)
    long = [t for t, n in zip(texts, lengths) if n > CONTEXT]
    assert 3 <= len(long) < len(texts), lengths          # the world has long and short descriptions
    for text in long:
        chunks = chunk_text(text, tok, CONTEXT)
        assert len(chunks) >= 2
        assert " ".join(chunks) == " ".join(sentences(text))          # every sentence once, in order
        for c in chunks:
            assert c.endswith((".", "!", "?")) and c[0].isupper()      # whole sentences
            ids = tok(c)["input_ids"]
            assert len(ids) <= CONTEXT or len(sentences(c)) == 1      # fits, or is one over-long sentence
            # what the encoder gets: the chunk untruncated (truncation at the context changes nothing)
            assert tok(c, truncation=True, max_length=CONTEXT)["input_ids"] == ids or len(sentences(c)) == 1
        # greedy: a chunk plus the next chunk's first sentence would not fit
        for a, b in zip(chunks, chunks[1:]):
            assert token_count(tok, [a + " " + sentences(b)[0]])[0] > CONTEXT
    short = next(t for t, n in zip(texts, lengths) if n <= CONTEXT)
    assert chunk_text(short, tok, CONTEXT) == [short]


def test_fit_items_counts_and_replaces_long_descriptions_by_their_chunks():
    import numpy as np

    texts = _descriptions()
    tok = train_wordpiece(texts, 400)
    items = [Item(f"{i}.jpg", "train", np.zeros((1, 16, 2), np.float32), np.zeros((1, 16), np.int64),
                  descriptions=(t, "A short one."), describers=("template", "other")) for i, t in enumerate(texts)]
    unique = sorted(set(texts))                     # two scenes may read the same
    n_long = sum(n > CONTEXT for n in token_count(tok, unique))
    same, counts = fit_items(items, tok, CONTEXT, "truncate")
    assert same is items and counts == {"descriptions": len(unique) + 1, "too_long": n_long}
    chunked, counts = fit_items(items, tok, CONTEXT, "chunk")
    assert counts["too_long"] == n_long and counts["chunks"] > n_long
    for before, after in zip(items, chunked):
        parts = chunk_text(before.descriptions[0], tok, CONTEXT)
        assert after.descriptions == (*parts, "A short one.")
        assert after.describers == ("template",) * len(parts) + ("other",)
        assert all(n <= CONTEXT or len(sentences(d)) == 1
                   for d, n in zip(after.descriptions, token_count(tok, after.descriptions)))
