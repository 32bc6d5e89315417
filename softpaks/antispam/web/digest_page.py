"""Placeholder: filled in by its owner."""

PAGES: list = []
