"""The pose domain: annotation records, the MPII skeleton, pose geometry in words, ROI heatmaps, splits
and the synthetic world. Imports only focusclip.core among our packages (tests/test_layout.py)."""
