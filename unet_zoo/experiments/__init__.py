"""Experiments: a paper's setup reproduced end to end (data, split, recipes, evaluation, comparison, timing).

`isbi2012`: the U-Net paper's ISBI 2012 experiment (`unet-zoo reproduce isbi`).
"""
