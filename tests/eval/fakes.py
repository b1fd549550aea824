"""A fake EvalModel whose image embeddings come from the true labels (read off the image colour)."""
from __future__ import annotations

import numpy as np
import torch


class ColourModel:
    """Images are painted colour(c) for class c. Text embeddings are one-hot by the class the prompt
    was written for; the image of class c embeds as e[mapping[c]] + 0.5·e[c], so the top-1 guess is
    mapping[c] and, when that is wrong, the second guess is the true class."""

    image_size = 8

    def __init__(self, colours: list[tuple[int, int, int]], prompt_class: dict[str, int], mapping=None,
                 name: str = "fake-colour", sha256: str = "0" * 64):
        self.colours = torch.tensor(colours, dtype=torch.float32) / 255        # [C, 3]
        self.prompt_class = prompt_class
        self.num_classes = len(colours)
        self.mapping = list(mapping) if mapping is not None else list(range(self.num_classes))
        self.name = name
        self.sha256 = sha256            # "which weights": results are reused only for the same value
        self.images_seen = 0

    def preprocess(self, image) -> torch.Tensor:
        arr = np.asarray(image.convert("RGB").resize((self.image_size, self.image_size)), np.float32) / 255
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()           # [3, S, S]

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        mean = pixels.float().mean(dim=(2, 3))                                 # [B, 3]
        cls = torch.cdist(mean, self.colours).argmin(dim=1)                   # [B] nearest colour
        self.images_seen += len(cls)
        emb = torch.zeros(len(cls), self.num_classes)
        for i, c in enumerate(cls.tolist()):
            emb[i, self.mapping[c]] += 1.0
            if self.mapping[c] != c:
                emb[i, c] += 0.5
        return torch.nn.functional.normalize(emb, dim=-1)

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        return torch.eye(self.num_classes)[[self.prompt_class[t] for t in texts]]
