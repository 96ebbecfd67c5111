"""Whole volumes: blockwise prediction of Zarr / OME-Zarr / TIFF / dask arrays (`predict`), their reading and writing
(`io`) and dask.distributed workers (`cluster`). Needs the `volumes` extra (zarr, dask.distributed).
"""
