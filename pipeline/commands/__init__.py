"""Thin Typer commands, one module per stage; each exposes `register(app)`. Only these import typer."""
