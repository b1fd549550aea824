"""The `focus-data` stages: download, convert, heatmaps, describe, filter, publish, synth, frames, demo."""
