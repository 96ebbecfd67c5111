"""Training: the weighted loss (`losses`), one optimisation step (`step`), typed TOML recipes (`recipes`), torchrun helpers
(`distributed`), the trainer's slices and weight maps (`data`), the run folder and clock
(`run`) and the training loop (`trainer`: `Trainer(model, data, loss, ...)` and `Trainer.from_recipe(recipe)`).
"""
