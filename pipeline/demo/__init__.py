"""`focus-data demo`: the whole pipeline on a generated world, as separate processes (docs/demo.md).

`layout` holds the options and paths, `plans` one planner per step, `stage` runs them, `merge` and
`report` are its two in-process steps.
"""
from focusclip.pipeline.demo.layout import DemoOptions
from focusclip.pipeline.demo.stage import run_demo

__all__ = ["DemoOptions", "run_demo"]
