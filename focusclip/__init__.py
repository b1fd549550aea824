"""focusclip: build the MPII Pose Descriptions dataset, and train and evaluate FocusCLIP on it.

The code lives in the repository's top-level folders, installed as subpackages of this one
(`pyproject.toml` maps them): `focusclip.data` (records, skeleton, heatmaps, geometry, the synthetic
world), `focusclip.converters`, `focusclip.prompts`, `focusclip.pipeline` (the `focus-data` stages),
`focusclip.training` (`focus-train`; the transformers model `FocusCLIPModel`) and `focusclip.eval`
(`focus-eval`), all over `focusclip.core` (errors, files, reports, progress, the hub). Importing
this package does nothing but read the version; `import focusclip.training.model` registers
`model_type: focusclip` with transformers' Auto classes. See docs/design.md.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("focusclip")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"
