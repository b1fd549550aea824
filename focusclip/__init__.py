"""focusclip: build the MPII Pose Descriptions dataset, and train and evaluate FocusCLIP on it.

The code lives in the repository's top-level folders, installed as subpackages of this one
(`pyproject.toml` maps them): `focusclip.data` (records, skeleton, heatmaps, geometry, the synthetic
world), `focusclip.converters`, `focusclip.prompts`, `focusclip.pipeline` (the `focus-data` stages),
`focusclip.training` (`focus-train`; the transformers model `FocusCLIPModel`) and `focusclip.eval`
(`focus-eval`). See docs/design.md.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("focusclip")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"

# `AutoConfig`/`AutoModel.from_pretrained` learn `model_type: focusclip` once the user's code imports
# them; importing focusclip itself stays free of torch and transformers (focusclip/_auto.py).
from focusclip import _auto  # noqa: E402

_auto.install()
