"""The zero-shot classifier and the scoring of images against it, on fake models whose embeddings
the test sets: every number is computed again here with numpy."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from focusclip.eval.readers import ImageRef, Sample
from focusclip.eval.zeroshot import EmbeddingCache, build_classifier, score_samples


class TableTextModel:
    """encode_texts looks each prompt up in a table (raw vectors, not normalised, in any dtype) and
    records the prompts it was asked for, in order."""

    name, image_size, sha256 = "fake-text", 8, None

    def __init__(self, table: dict[str, list[float]], dtype=torch.float32):
        self.table, self.dtype, self.asked = table, dtype, []

    def encode_texts(self, texts):
        self.asked.append(list(texts))
        return torch.tensor([self.table[t] for t in texts], dtype=self.dtype)


def reference_classifier(table, prompts) -> np.ndarray:
    """[D, C] by the textbook recipe: normalise each prompt's embedding, average a class's templates,
    normalise the average."""
    cols = []
    for row in prompts:
        unit = [np.asarray(table[p], float) / np.linalg.norm(table[p]) for p in row]
        mean = np.mean(unit, axis=0)
        cols.append(mean / np.linalg.norm(mean))
    return np.stack(cols, axis=1)


def test_templates_are_normalised_before_they_are_averaged():
    # class "sit": two templates of lengths 3 and 4 along x and y → the unit average (1, 1, 0)/√2;
    # averaging before normalising would give (3, 4, 0)/5 instead
    table = {"a sitting person": [3.0, 0.0, 0.0], "someone sitting": [0.0, 4.0, 0.0],
             "a standing person": [0.0, 0.0, 5.0], "someone standing": [0.0, 2.0, 0.0]}
    prompts = [["a sitting person", "someone sitting"], ["a standing person", "someone standing"]]
    model = TableTextModel(table)
    w = build_classifier(model, prompts)
    s = 1 / np.sqrt(2)
    assert w.shape == (3, 2) and w.dtype == torch.float32 and w.is_contiguous()
    np.testing.assert_allclose(w.numpy(), [[s, 0.0], [s, s], [0.0, s]], atol=1e-6)
    # the model is asked once, class by class, each class's templates in order
    assert model.asked == [["a sitting person", "someone sitting", "a standing person", "someone standing"]]


@pytest.mark.parametrize("num_templates", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_random_embeddings_match_the_reference(num_templates, dtype):
    rng = np.random.default_rng(7)
    num_classes, dim = 5, 8
    prompts = [[f"class {c} template {t}" for t in range(num_templates)] for c in range(num_classes)]
    table = {p: (rng.normal(size=dim) * rng.uniform(0.1, 10)).tolist() for row in prompts for p in row}
    if dtype == torch.float16:        # compare against what the model really returns
        table = {k: np.asarray(v, np.float16).astype(float).tolist() for k, v in table.items()}
    w = build_classifier(TableTextModel(table, dtype), prompts)
    assert w.shape == (dim, num_classes) and w.dtype == torch.float32
    np.testing.assert_allclose(w.numpy(), reference_classifier(table, prompts), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(w.numpy(), axis=0), 1.0, atol=1e-6)   # unit columns


def test_a_class_missing_a_template_is_an_internal_error():
    table = {"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [1.0, 1.0]}
    with pytest.raises(AssertionError, match="every class needs every template"):
        build_classifier(TableTextModel(table), [["a", "b"], ["c"]])


class ColourVectorModel:
    """The image embedding is the image's mean colour, normalised: a PNG painted (150, 0, 200) embeds
    as (3, 0, 4)/5. Counts the images it encodes."""

    name, image_size, sha256 = "fake-colour-vector", 4, None

    def __init__(self):
        self.encoded = 0

    def preprocess(self, image):
        arr = np.asarray(image.convert("RGB").resize((self.image_size,) * 2), np.float32)
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()             # [3, S, S]

    def encode_images(self, pixels):
        self.encoded += len(pixels)
        return torch.nn.functional.normalize(pixels.float().mean(dim=(2, 3)), dim=-1)   # [B, 3]


COLOURS = {"x.png": (150, 0, 200), "y.png": (0, 100, 0), "z.png": (80, 80, 80)}


@pytest.fixture
def images(tmp_path):
    for name, rgb in COLOURS.items():
        Image.new("RGB", (6, 6), rgb).save(tmp_path / name)
    return tmp_path


def samples(root, *names):
    """Samples of these files; names not in COLOURS do not exist (an unusable image)."""
    return [Sample(ImageRef(path=str(root / n)), (0,), n) for n in names]


def test_scores_are_cosines_and_unusable_rows_are_nan(images):
    classifier = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])     # [D=3, C=2]: axes x and y
    scores, reasons = score_samples(ColourVectorModel(), samples(images, "x.png", "gone.png", "y.png", "z.png",
                                                                 "gone2.png"), classifier, batch_size=2, workers=0)
    r3 = 1 / np.sqrt(3)
    want = np.array([[0.6, 0.0], [np.nan, np.nan], [0.0, 1.0], [r3, r3], [np.nan, np.nan]], np.float32)
    np.testing.assert_allclose(scores, want, atol=1e-6)
    assert scores.dtype == np.float32 and dict(reasons) == {"unreadable image (FileNotFoundError)": 2}


def test_the_cache_reuses_shared_images_and_encodes_each_new_one_once(images):
    classifier = torch.eye(3)
    model, cache = ColourVectorModel(), EmbeddingCache()
    first, _ = score_samples(model, samples(images, "x.png", "y.png", "x.png", "gone.png"), classifier,
                             batch_size=4, workers=0, cache=cache)
    # x.png twice in one task is decoded once; the missing file is tried (and fails) once
    assert model.encoded == 3 and cache.reused == 0
    np.testing.assert_allclose(first[2], first[0])
    np.testing.assert_allclose(first[0], [0.6, 0.0, 0.8], atol=1e-6)
    second, reasons = score_samples(model, samples(images, "z.png", "x.png", "gone.png"), classifier,
                                    batch_size=4, workers=0, cache=cache)
    assert model.encoded == 3 + 1 and cache.reused == 2      # x.png and the missing one come from the cache
    np.testing.assert_allclose(second[1], first[0])
    np.testing.assert_allclose(second[0], np.full(3, 1 / np.sqrt(3)), atol=1e-6)
    assert np.isnan(second[2]).all() and dict(reasons) == {"unreadable image (FileNotFoundError)": 1}
    # only the last task's images are kept: y.png is encoded again
    score_samples(model, samples(images, "y.png"), classifier, batch_size=4, workers=0, cache=cache)
    assert model.encoded == 5
