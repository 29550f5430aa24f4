"""Shipped YAML: the main config, the default policy, intents and dialogue flows.

A package so the files install with callsense and work with no config file at all.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CONFIG_DIR", "shipped"]

CONFIG_DIR = Path(__file__).resolve().parent


def shipped(relative: str) -> Path:
    """Path of a shipped config file, e.g. ``shipped("policies/default.yaml")``."""
    return CONFIG_DIR / relative
