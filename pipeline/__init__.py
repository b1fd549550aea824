"""The `focus-data` stages: convert, heatmaps, describe, filter, publish, synth, frames, demo."""
