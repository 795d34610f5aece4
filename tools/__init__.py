"""Measurement scripts the docs cite: `python -m tools.NAME`."""
