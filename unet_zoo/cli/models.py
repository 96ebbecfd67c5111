"""`unet-zoo list`, `info`, `compare`: explore the registry."""

from __future__ import annotations

import typer
from rich.table import Table

from unet_zoo.benchmark.latency import bench_tile, measure_latency
from unet_zoo.cli import options as opt
from unet_zoo.cli.app import app, check_device, console, fail, print_json
from unet_zoo.models.info import model_info
from unet_zoo.models.registry import PRETRAINED, get_entry, list_models
from unet_zoo.utils.device import resolve_device


def _resolve(name: str):
    try:
        get_entry(name)
    except KeyError as err:
        raise fail(err.args[0]) from None


@app.command("list")
def list_command(
    filter: str = typer.Argument("", help="fnmatch pattern, e.g. '*pad*'"),
    pretrained: bool = typer.Option(False, "--pretrained", help="only architectures with published weights"),
    as_json: opt.Json = False,
) -> None:
    """A table of registered models: name, params, default tile, output size, pretrained checkpoints.

    `unet-zoo info NAME` describes one model in full."""
    infos = [model_info(n) for n in list_models(filter, pretrained=pretrained)]
    if as_json:
        print_json([i.as_dict() for i in infos])
        return
    table = Table(title="unet_zoo models")
    for col in ("name", "params", "tile -> output", "GFLOPs/tile", "weights"):
        table.add_column(col, justify="right" if col in ("params", "GFLOPs/tile") else "left", no_wrap=col != "weights")
    for i in infos:
        table.add_row(
            i.name,
            f"{i.params / 1e6:.2f} M",
            f"{i.default_tile} -> {i.output_tile}",
            f"{i.gflops:.1f}",
            ", ".join(i.pretrained) or "-",
        )
    if not infos:
        what = "with published weights" if pretrained else "registered"
        console.print(
            f"no models {what}{f' match {filter!r}' if filter else ''}"
            + (
                "; train one with `unet-zoo reproduce isbi` (it writes cards/<name>/)"
                if pretrained and not PRETRAINED
                else "; `unet-zoo list` shows them all"
            )
        )
        return
    console.print(table)
    if pretrained:
        console.print(_checkpoint_table())
    elif PRETRAINED:
        console.print(
            f"checkpoints: {', '.join(PRETRAINED)} (load with unet_zoo.from_pretrained(name); "
            "`unet-zoo list --pretrained` shows their scores)"
        )


# Held-out scores shown for each published checkpoint: (metrics key, column title).
CHECKPOINT_COLUMNS = (
    ("vrand_thinned", "V_rand thinned"),
    ("vinfo_thinned", "V_info thinned"),
    ("rand_error", "Rand error"),
    ("warping_error", "warping error"),
    ("pixel_error", "pixel error"),
)


def _checkpoint_table() -> Table:
    """Published checkpoints with their held-out ISBI 2012 scores (slices 24-29, with TTA) from the registry."""
    table = Table(title="pretrained checkpoints (held-out ISBI 2012 slices 24-29, with TTA)")
    table.add_column("checkpoint")
    table.add_column("architecture")
    for _, title in CHECKPOINT_COLUMNS:
        table.add_column(title, justify="right")
    table.add_column("Hub repo")
    for cfg in PRETRAINED.values():
        scores = [f"{cfg.metrics[key]:.4g}" if key in cfg.metrics else "-" for key, _ in CHECKPOINT_COLUMNS]
        table.add_row(cfg.name, cfg.architecture, *scores, cfg.hf_hub_id)
    return table


@app.command("info")
def info_command(
    name: str = typer.Argument(..., help="registered model name"),
    as_json: opt.Json = False,
) -> None:
    """Everything `unet_zoo.model_info` knows about one model."""
    _resolve(name)
    info = model_info(name)
    if as_json:
        print_json(info.as_dict())
        return
    table = Table(title=f"{name}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    rows = {
        "description": info.description,
        "family": info.family,
        "parameters": f"{info.params:,}",
        "default tile": f"{info.default_tile} x {info.default_tile} -> {info.output_tile} x {info.output_tile}",
        "GFLOPs per tile (forward)": f"{info.gflops:.1f}",
        "receptive field": f"{info.receptive_field} px" if info.receptive_field else "n/a",
        "size rule": info.size_rule,
        "pretrained": ", ".join(info.pretrained) or "none",
        "config": ", ".join(f"{k}={v}" for k, v in info.config.items()),
    }
    for k, v in rows.items():
        table.add_row(k, str(v))
    console.print(table)


@app.command("compare")
def compare_command(
    names: list[str] = typer.Argument(..., help="two or more model names"),
    bench: bool = typer.Option(False, "--bench", help="also measure forward latency on this machine"),
    tile: opt.Tile = 0,
    device: opt.Device = None,
) -> None:
    """Models side by side; --bench adds measured forward latency (median of 3, batch 1, random weights).

    --bench runs on --device with tiles of --tile pixels, each model at the nearest size >= it that it takes."""
    if len(names) < 2:
        raise fail(f"compare needs two or more model names, got {len(names)}; `unet-zoo info {names[0]}` describes one")
    for n in names:
        _resolve(n)
    if bench:
        check_device(device or "")
        on = str(resolve_device(device))
        try:
            tiles = [bench_tile(n, tile or None) for n in names]
        except ValueError as err:
            raise fail(f"--tile: {err}") from None
    infos = [model_info(n) for n in names]
    table = Table(title="comparison")
    table.add_column("", style="bold")
    for i in infos:
        table.add_column(i.name, justify="right")
    table.add_row("params", *(f"{i.params:,}" for i in infos))
    table.add_row("default tile", *(f"{i.default_tile}->{i.output_tile}" for i in infos))
    table.add_row("GFLOPs/tile", *(f"{i.gflops:.1f}" for i in infos))
    table.add_row("GFLOPs/output Mpx", *(f"{i.gflops / (i.output_tile**2 / 1e6):.0f}" for i in infos))
    table.add_row("receptive field", *(str(i.receptive_field or "n/a") for i in infos))
    table.add_row("size rule", *(i.size_rule for i in infos))
    table.add_row("pretrained", *(", ".join(i.pretrained) or "-" for i in infos))
    if bench:
        try:
            latencies = [measure_latency(i.name, t, device=on) for i, t in zip(infos, tiles)]
        except (RuntimeError, MemoryError) as err:  # out of memory on this device
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise fail(f"--bench could not run a {max(tiles)} px tile on {on}: {first}; try a smaller --tile") from None
        table.add_row("bench tile", *(str(t) for t in tiles))
        table.add_row(f"forward s ({on})", *(f"{t:.3f}" for t in latencies))
    console.print(table)
