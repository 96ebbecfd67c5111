"""Data: image files (`images`, `files`), named data sources a recipe reads (`sources`), the held-out split (`split`),
the paper's weight maps (`weight_maps`), elastic deformation and training tiles (`augment`).
"""
