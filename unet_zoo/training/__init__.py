"""Training: the weighted loss (`losses`), one optimisation step (`step`), typed TOML recipes (`recipes`), torchrun helpers
(`distributed`), the trainer's slices and weight maps (`data`) and the training loop (`trainer`).
"""
