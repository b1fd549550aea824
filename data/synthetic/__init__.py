"""The synthetic world: MPII-like scenes with known poses, for the demo and the tests.

`pose` samples activities and skeletons, `render` draws people and clutter, `world` generates the
MPII-layout training set (written as a real `.mat` by `mat_writer`), `evalsets` the evaluation sets
in official dataset layouts.
"""
