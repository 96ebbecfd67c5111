"""Hugging Face Hub integration (placeholder until the Hub issue lands)."""
from __future__ import annotations


class HubMixin:
    """Adds save_pretrained / push_to_hub to zoo models."""
