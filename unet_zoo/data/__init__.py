"""Data: ISBI 2012 loading and the split (`isbi`), image files (`images`), the paper's weight maps (`weight_maps`) and
elastic deformation and training tiles (`augment`).
"""
