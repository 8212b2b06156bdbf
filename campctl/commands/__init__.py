"""Typer command modules: thin wrappers that parse options, call the core and render."""
