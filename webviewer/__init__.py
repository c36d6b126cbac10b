"""Streaming CT web viewer."""

__version__ = "0.1.0"
