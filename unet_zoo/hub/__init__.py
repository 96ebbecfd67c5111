"""Checkpoints: what a model source names (`sources`), the one door `from_pretrained` (`factory`), the model folder
format (`serialization`), a training run's resume file, which also loads as a model (`training_state`), the model
card (`card`), the Hugging Face Hub (`pretrained`: published checkpoints, Hub repos, download, push), the deprecated
`load_model` (`loading`) and publishing a Hub-ready folder with its card, scores and figures (`publish`).
"""
