"""Checkpoints: the model folder format (`serialization`), the model card (`card`), the Hugging Face Hub (`pretrained`:
from_pretrained, download, push), `load_model` (`loading`) and publishing a Hub-ready folder with its card, scores and
figures (`publish`).
"""
