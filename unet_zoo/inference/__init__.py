"""Prediction: the paper's overlap-tile inference on images of any size (`tiling`) and on regions of large arrays
(`region`).
"""
