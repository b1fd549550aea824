"""`focus-data heatmaps`: ROI heatmap PNGs for every annotated image (docs/heatmaps.md).

`stage` walks the annotations and skips finished PNGs, `render` batches and encodes on CPU or GPU,
`preview` draws the overlays.
"""
from focusclip.pipeline.heatmaps.stage import run_heatmaps

__all__ = ["run_heatmaps"]
