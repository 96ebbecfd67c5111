"""unet_zoo.benchmark.latency: the tile sizes and latency of `unet-zoo compare --bench`."""


def test_bench_tile_rounds_up_to_a_usable_size():
    from unet_zoo.benchmark.latency import bench_tile

    assert bench_tile("original") == 572 and bench_tile("small") == 512  # default tiles
    assert bench_tile("original", 512) == 524 and bench_tile("original", 100) == 188
    assert bench_tile("padded", 188) == 192 and bench_tile("padded", 192) == 192
    assert bench_tile("timm-resnet18", 40) == 64
