"""Shared page pieces: the layout, product cards, messages."""
