"""Checkpoints: the model folder format (`serialization`), the model card (`card`), the Hugging Face Hub (`pretrained`:
from_pretrained, download, push), and `load_model` (`loading`).
"""
