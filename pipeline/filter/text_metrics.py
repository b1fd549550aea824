"""Offline text-quality metrics for descriptions: no spaCy model, no LanguageTool, no download.

Per text: words, sentences, syllables, word n-gram repetition. Per corpus: length statistics, lexical
diversity (MTLD), 3-gram repetition, TF-IDF self-similarity and the Flesch-Kincaid grade.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

import numpy as np
from scipy import sparse

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)*")
# A sentence ends at . ! or ? (runs such as "?!" or "..." count once) followed by space or the end.
_SENTENCE_END = re.compile(r"[.!?]+(?:[\"')\]]*)(?=\s|$)")
_VOWEL_GROUP = re.compile(r"[aeiouy]+")

# McCarthy & Jarvis (2010): a factor ends when the running type-token ratio falls to 0.72.
MTLD_THRESHOLD = 0.72


def words(text: str) -> list[str]:
    """Lower-cased word tokens; "person's" stays one token, punctuation is dropped."""
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def sentences(text: str) -> list[str]:
    """Sentences split after . ! ? followed by space or the end; a trailing fragment counts too."""
    parts, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        parts.append(text[start:m.end()])
        start = m.end()
    parts.append(text[start:])
    return [p.strip() for p in parts if words(p)]


def syllables(word: str) -> int:
    """English syllables by vowel groups, with the silent-e, -es and -ed rules (at least 1).

    "table" 2 (consonant + le is voiced), "raised" 1, "wanted" 2 (-ed after t/d is voiced),
    "images" 3 (-es after a sibilant is voiced), "holes" 1, "body" 2 (y is a vowel after the start),
    "lying" 2 (a vowel before -ing is its own syllable).
    """
    w = re.sub(r"[^a-z]", "", word.lower())
    if not w:
        return 1  # a number or symbol is read as at least one syllable
    if len(w) <= 3:
        return 1
    if w.endswith("ed") and w[-3] not in "td":
        w = w[:-2]
    elif w.endswith("es") and not re.search(r"(?:[sxzcg]|ch|sh)es$", w):
        w = w[:-2]
    elif w.endswith("e") and not re.search(r"[^aeiouy]le$", w):
        w = w[:-1]
    core = w[1:] if w.startswith("y") else w  # initial y is a consonant ("yes", "yellow")
    n = len(_VOWEL_GROUP.findall(core))
    if re.search(r"[aeiouy]ing$", w):  # "going", "lying", "playing": the vowel before -ing is voiced
        n += 1
    return max(1, n)


def flesch_kincaid_grade(text: str | Sequence[str]) -> float:
    """0.39 · words/sentences + 11.8 · syllables/words − 15.59, pooled over one text or many."""
    texts = [text] if isinstance(text, str) else list(text)
    n_words = n_sentences = n_syllables = 0
    for t in texts:
        ws = words(t)
        n_words += len(ws)
        n_sentences += len(sentences(t))
        n_syllables += sum(syllables(w) for w in ws)
    if n_words == 0 or n_sentences == 0:
        return float("nan")
    return 0.39 * n_words / n_sentences + 11.8 * n_syllables / n_words - 15.59


def _mtld_pass(tokens: Sequence[str], threshold: float) -> float:
    """Number of factors in one direction, the last partial factor counted as a fraction."""
    factors, types, count, ttr = 0.0, set(), 0, 1.0
    for tok in tokens:
        types.add(tok)
        count += 1
        ttr = len(types) / count
        if ttr <= threshold:
            factors += 1
            types, count, ttr = set(), 0, 1.0
    return factors + (1.0 - ttr) / (1.0 - threshold)


def mtld(tokens: Sequence[str], threshold: float = MTLD_THRESHOLD) -> float:
    """Measure of Textual Lexical Diversity: mean of the forward and backward token/factor ratios.

    A text whose type-token ratio never drops gives zero factors; its MTLD is its length, the most
    diversity so short a text can show.
    """
    tokens = list(tokens)
    if not tokens:
        return float("nan")
    out = []
    for seq in (tokens, tokens[::-1]):
        f = _mtld_pass(seq, threshold)
        out.append(len(seq) / f if f > 0 else float(len(seq)))
    return sum(out) / 2


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def ngram_repetition(tokens: Sequence[str], n: int = 3) -> float:
    """Share of word n-grams that repeat an earlier one: 1 − distinct / total (0 for no n-grams)."""
    grams = ngrams(tokens, n)
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def corpus_ngram_repetition(token_lists: Sequence[Sequence[str]], n: int = 3) -> float:
    """1 − distinct / total over the n-grams of every text (n-grams never span two texts)."""
    total, seen = 0, set()
    for toks in token_lists:
        grams = ngrams(toks, n)
        total += len(grams)
        seen.update(grams)
    return 1.0 - len(seen) / total if total else 0.0


def tfidf_self_similarity(token_lists: Sequence[Sequence[str]]) -> float:
    """Mean cosine similarity over all pairs of distinct texts, with TF-IDF vectors.

    tf is the raw count, idf = ln((1 + N) / (1 + df)) + 1 (smoothed), each row L2-normalised. With unit
    rows v_i, Σ_{i≠j} v_i·v_j = ‖Σ v_i‖² − N, so the exact mean needs one pass and no N×N matrix.
    """
    docs = [Counter(t) for t in token_lists if t]
    n = len(docs)
    if n < 2:
        return float("nan")
    vocab: dict[str, int] = {}
    rows, cols, vals = [], [], []
    for i, c in enumerate(docs):
        for w, k in c.items():
            rows.append(i)
            cols.append(vocab.setdefault(w, len(vocab)))
            vals.append(k)
    tf = sparse.csr_matrix((np.array(vals, dtype=np.float64), (rows, cols)), shape=(n, len(vocab)))
    df = np.bincount(cols, minlength=len(vocab))  # (V,) each (doc, word) pair appears once
    idf = np.log((1 + n) / (1 + df)) + 1.0
    x = tf.multiply(idf[None, :]).tocsr()  # (N, V)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())  # (N,)
    x = sparse.diags(1.0 / norms) @ x
    total = np.asarray(x.sum(axis=0)).ravel()  # (V,) Σ v_i
    return float((total @ total - n) / (n * (n - 1)))


def length_stats(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    a = np.asarray(values, dtype=np.float64)
    return {"n": int(a.size), "mean": round(float(a.mean()), 3), "std": round(float(a.std()), 3),
            "min": float(a.min()), "p5": float(np.percentile(a, 5)), "median": float(np.median(a)),
            "p95": float(np.percentile(a, 95)), "max": float(a.max())}


def corpus_metrics(texts: Sequence[str]) -> dict:
    """The quality metrics of a set of descriptions, as written into the filter report."""
    token_lists = [words(t) for t in texts]
    pooled = [w for toks in token_lists for w in toks]
    return {
        "n_texts": len(texts),
        "words": length_stats([len(t) for t in token_lists]),
        "sentences": length_stats([len(sentences(t)) for t in texts]),
        "chars": length_stats([len(t) for t in texts]),
        "vocabulary": len(set(pooled)),
        "mtld": _round(mtld(pooled)) if pooled else None,
        "mtld_mean_per_text": _round(float(np.mean([mtld(t) for t in token_lists if t])))
        if pooled else None,
        "trigram_repetition": _round(corpus_ngram_repetition(token_lists, 3)),
        "trigram_repetition_mean_per_text": _round(float(np.mean(
            [ngram_repetition(t, 3) for t in token_lists]))) if texts else None,
        "tfidf_self_similarity": _round(tfidf_self_similarity(token_lists)),
        "flesch_kincaid_grade": _round(flesch_kincaid_grade(texts)),
    }


def _round(x: float) -> float | None:
    return None if x is None or math.isnan(x) else round(float(x), 4)
