"""pipeline/filter/text_metrics.py against values computed by hand (the arithmetic is in the comments)."""
from __future__ import annotations

import math

import pytest

from focusclip.pipeline.filter.text_metrics import (corpus_metrics, corpus_ngram_repetition, flesch_kincaid_grade, mtld,
                                   ngram_repetition, sentences, syllables, tfidf_self_similarity, words)


def test_words_and_sentences():
    assert words("The person's LEFT arm, raised!") == ["the", "person's", "left", "arm", "raised"]
    # "3.5" is no sentence end (no space after the dot); the fragment after "Yes!" counts.
    assert sentences('He is 3.5 m tall. Is he? "Yes!" said she and') == [
        "He is 3.5 m tall.", "Is he?", '"Yes!"', "said she and"]
    assert sentences("  ") == []


@pytest.mark.parametrize("word,n", [
    ("the", 1), ("arm", 1), ("head", 1), ("raised", 1), ("holes", 1), ("lowered", 2), ("wanted", 2),
    ("table", 2), ("people", 2), ("person", 2), ("image", 2), ("above", 2), ("body", 2), ("lying", 2),
    ("going", 2), ("raises", 2), ("images", 3), ("elephants", 3), ("enormous", 3), ("animals", 3),
    ("horizontal", 4), ("yes", 1),
])
def test_syllables(word, n):
    assert syllables(word) == n


def test_mtld_by_hand():
    # "a b c a" forward: TTR 1, 1, 1, 3/4 = 0.75 at the end, never ≤ 0.72 → 0 full factors and a
    # partial factor (1 − 0.75) / (1 − 0.72) = 0.892857; 4 / 0.892857 = 4.48. Backward "a c b a": same.
    assert mtld("a b c a".split()) == pytest.approx(4.48)
    # "a a b c" forward: TTR 1, 1/2 ≤ 0.72 → factor 1, restart; b 1, c 2/2 = 1 → partial 0 → 4 / 1 = 4.
    # Backward "c b a a": 1, 1, 1, 3/4 → partial 0.892857 → 4.48. Mean (4 + 4.48) / 2 = 4.24.
    assert mtld("a a b c".split()) == pytest.approx(4.24)
    # "the dog saw the cat and the dog ran": forward TTR reaches 5/7 = 0.714 at the 7th token → one
    # factor, then "dog ran" (TTR 1) → 9 / 1 = 9. Backward it reaches 6/9 = 0.667 at the last token
    # → one factor, nothing left → 9. MTLD 9.
    assert mtld("the dog saw the cat and the dog ran".split()) == pytest.approx(9.0)
    # All-distinct text: no factor at all; MTLD is its length.
    assert mtld("a b c".split()) == 3.0
    assert math.isnan(mtld([]))


def test_trigram_repetition_by_hand():
    # 3-grams of "the cat sat the cat sat": (the cat sat) (cat sat the) (sat the cat) (the cat sat):
    # 4 in all, 3 distinct → 1 − 3/4 = 0.25.
    assert ngram_repetition("the cat sat the cat sat".split(), 3) == pytest.approx(0.25)
    assert ngram_repetition("a b".split(), 3) == 0.0
    # Corpus "a b c" + "a b c d": (a b c) | (a b c) (b c d) → 3 in all, 2 distinct → 1/3.
    assert corpus_ngram_repetition([["a", "b", "c"], ["a", "b", "c", "d"]]) == pytest.approx(1 / 3)


def test_flesch_kincaid_by_hand():
    # 9 words, 2 sentences, 9 syllables: 0.39·4.5 + 11.8·1 − 15.59 = −2.035.
    assert flesch_kincaid_grade("The cat sat on the mat. The dog ran.") == pytest.approx(-2.035)
    # el·e·phants 3, are 1, e·nor·mous 3, an·i·mals 3 = 10 syllables, 4 words, 1 sentence:
    # 0.39·4 + 11.8·2.5 − 15.59 = 1.56 + 29.5 − 15.59 = 15.47.
    assert flesch_kincaid_grade("Elephants are enormous animals.") == pytest.approx(15.47)
    # Pooled: 13 words, 3 sentences, 19 syllables: 0.39·13/3 + 11.8·19/13 − 15.59 = 3.346154.
    assert flesch_kincaid_grade(["The cat sat on the mat. The dog ran.", "Elephants are enormous animals."]
                                ) == pytest.approx(3.346154, abs=1e-6)


def test_tfidf_self_similarity_by_hand():
    # N=2, df(a)=2, df(b)=df(c)=1; idf = ln(3/(1+df)) + 1: a → 1, b, c → 1 + ln 1.5 = 1.405465.
    # v1 = (1, 1.405465, 0)/‖·‖, v2 = (1, 0, 1.405465)/‖·‖ with ‖·‖² = 1 + 1.975332 = 2.975332;
    # cos = 1 / 2.975332 = 0.336097.
    assert tfidf_self_similarity([["a", "b"], ["a", "c"]]) == pytest.approx(0.336097, abs=1e-6)
    assert tfidf_self_similarity([["a", "b"], ["a", "b"], ["b", "a"]]) == pytest.approx(1.0)
    assert tfidf_self_similarity([["a"], ["b"], ["c"]]) == pytest.approx(0.0)
    assert math.isnan(tfidf_self_similarity([["a"]]))


def test_tfidf_closed_form_matches_pairwise_mean():
    # The one-pass formula (‖Σv‖² − N) / (N(N−1)) against the explicit mean over all pairs.
    import numpy as np

    docs = [words(t) for t in ("a b b c", "c d", "a a a e", "e b d", "f")]
    vocab = sorted({w for d in docs for w in d})
    n = len(docs)
    df = np.array([sum(w in d for d in docs) for w in vocab])
    idf = np.log((1 + n) / (1 + df)) + 1
    m = np.array([[d.count(w) for w in vocab] for d in docs], float) * idf
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    sims = m @ m.T
    expected = (sims.sum() - n) / (n * (n - 1))
    assert tfidf_self_similarity(docs) == pytest.approx(expected)


def test_corpus_metrics_fields():
    out = corpus_metrics(["The cat sat on the mat.", "The dog ran home quickly."])
    assert out["n_texts"] == 2
    assert out["words"]["mean"] == 5.5 and out["words"]["min"] == 5 and out["words"]["max"] == 6
    assert out["sentences"]["mean"] == 1.0
    assert out["vocabulary"] == 9
    assert out["trigram_repetition"] == 0.0
    assert 0 < out["tfidf_self_similarity"] < 1
    empty = corpus_metrics([])
    assert empty["n_texts"] == 0 and empty["mtld"] is None and empty["tfidf_self_similarity"] is None
