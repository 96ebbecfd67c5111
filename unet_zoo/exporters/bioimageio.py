"""bioimage.io model packages (format 0.5, written with ``bioimageio.spec``) of zoo models.

The package (a .zip that ilastik, deepImageJ, QuPath and napari open) holds:
- input "input" (batch, channel, y, x) uint8, preprocessed to float32 / 255 (the recipes' scaling);
  y and x sizes ``min + n * step`` from the model's size rule (188 + 16n for `original`);
- output "output" (batch, channel, y, x) float32 softmax probabilities, one channel per class; the
  spatial size refers to the input's with the model's border loss as offset (-184 for `original`,
  so a 572 input gives 388; 0 for the padded models);
- weights: ``pytorch_state_dict`` (architecture file + kwargs; it builds the model with unet_zoo),
  ``torchscript`` and ``onnx`` where they export and match torch within 1e-4;
- test input/output tensors (.npy), a cover image, the model card as documentation, citations.
"""

from __future__ import annotations

import copy
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import torch
from PIL import Image
from scipy import ndimage
from torch import nn

from unet_zoo.data.sources import load_source
from unet_zoo.exporters.sessions import onnxruntime_session, require, session_forward
from unet_zoo.exporters.traced import (
    ONNX_OPSET,
    Probabilities,
    check_export,
    load_torchscript,
    onnx_bytes,
    torch_probabilities,
    torchscript_bytes,
)
from unet_zoo.hub.card import CardInfo, render_model_card
from unet_zoo.hub.serialization import model_identity
from unet_zoo.models.provenance import provenance_of
from unet_zoo.models.sizes import input_size_for_output, output_size
from unet_zoo.utils.errors import InputError
from unet_zoo.utils.files import atomic_write_with, read_folder_file

ARCHITECTURE_FILE = "unet_zoo_architecture.py"
ARCHITECTURE_CALLABLE = "UNetZooProbabilities"
ARCHITECTURE_SOURCE = '''"""Architecture of a unet_zoo U-Net for bioimage.io pytorch_state_dict weights.

Needs `pip install unet-zoo`.
"""
import torch
from torch import nn


class UNetZooProbabilities(nn.Module):
    """unet_zoo.create_model(model_name, **model_args) followed by a softmax over the classes:
    (N, C_in, H, W) float32 in [0, 1] -> (N, num_classes, H', W') probabilities."""

    def __init__(self, model_name: str, model_args: dict):
        super().__init__()
        import unet_zoo

        self.model = unet_zoo.create_model(model_name, **model_args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)
'''
ENVIRONMENT = """name: unet-zoo
channels:
  - conda-forge
dependencies:
  - python>=3.10
  - pip
  - pip:
      - unet-zoo
"""
PAPER_CITATION = (
    "Ronneberger, O., Fischer, P., Brox, T.: U-Net: Convolutional Networks for Biomedical Image Segmentation. MICCAI 2015"
)
PAPER_URL = "https://arxiv.org/abs/1505.04597"
ISBI_CITATION = (
    "Arganda-Carreras, I. et al.: Crowdsourcing the creation of image segmentation algorithms for connectomics. "
    "Frontiers in Neuroanatomy 9:142 (2015)"
)
ISBI_DOI = "10.3389/fnana.2015.00142"
TAGS = [
    "unet",
    "u-net",
    "unet_zoo",
    "semantic-segmentation",
    "electron-microscopy",
    "membrane-segmentation",
    "2d",
    "pytorch",
    "isbi2012",
]


def size_parameters(model: nn.Module) -> tuple[int, int, int]:
    """(min, step, output offset) of the model's spatial sizes: input = min + n * step, output = input + offset.

    `original`: (188, 16, -184); padded U-Nets: (16, 16, 0); timm U-Nets: (stride, stride, 0).
    """
    depth, padding = getattr(model, "depth", None), getattr(model, "padding", None)
    if depth is not None and padding is not None:
        step = 2**depth
        smallest = input_size_for_output(1, depth, padding)
        return smallest, step, output_size(smallest, depth, padding) - smallest
    stride = int(model.stride)
    return stride, stride, 0


def default_sample() -> np.ndarray:
    """A 2-D uint8 image for the test tensors and cover: ISBI 2012 slice 0 if on this machine (the data source
    ``"isbi2012"``, `unet_zoo.data.sources`), else a synthetic membrane-like pattern (smoothed noise, thresholded
    into bright cells and dark lines)."""
    try:
        return load_source("isbi2012").images[0]
    except (FileNotFoundError, ValueError):
        noise = ndimage.gaussian_filter(np.random.default_rng(0).standard_normal((512, 512)), 12)
        edges = np.abs(noise) < 0.15 * noise.std()
        return np.where(edges, 40, 200).astype(np.uint8)


def _test_image(model: nn.Module, sample: np.ndarray) -> np.ndarray:
    """(1, C_in, S, S) uint8 centre crop (mirror-padded if needed) of a size the model accepts, S ~ 256."""
    smallest, step, _ = size_parameters(model)
    side = smallest + max(0, -(-(256 - smallest) // step)) * step
    image = np.asarray(sample)
    if image.ndim == 2:
        image = image[None]
    if image.dtype != np.uint8:
        raise ValueError(f"sample must be a uint8 image (H, W) or (C, H, W), got dtype {image.dtype}")
    short = max(0, side - min(image.shape[-2:]))
    if short:
        image = np.pad(image, ((0, 0), (0, short), (0, short)), mode="reflect")
    top, left = (image.shape[1] - side) // 2, (image.shape[2] - side) // 2
    return np.ascontiguousarray(image[None, :, top : top + side, left : left + side])


def _cover(image: np.ndarray, probs: np.ndarray, path: Path) -> None:
    """PNG: the input (cropped to the output's field) beside P(class 1), 2:1, at least 256 px high."""
    out_h, out_w = probs.shape[-2:]
    top, left = (image.shape[-2] - out_h) // 2, (image.shape[-1] - out_w) // 2
    crop = image[0, 0, top : top + out_h, left : left + out_w]
    prob = (np.clip(probs[0, min(1, probs.shape[1] - 1)], 0, 1) * 255).round().astype(np.uint8)
    panel = Image.fromarray(np.concatenate([crop, prob], axis=1))
    scale = max(1, -(-256 // out_h))
    panel.resize((panel.width * scale, panel.height * scale), Image.NEAREST).save(path)


def _documentation(model: nn.Module, name: str, args: dict[str, Any], min_size: int, step: int, offset: int) -> str:
    """The model card (without its YAML header) plus how to use the package."""
    record = provenance_of(model)
    card_path = Path(record.source) / "README.md" if record.kind == "folder" else None
    if card_path is not None and (card_path.exists() or card_path.is_symlink()):
        # only a regular file inside the model folder: a link could pack a token or a key into the package
        data = read_folder_file(card_path.parent, card_path.name, what="model card")
        try:
            card = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InputError(
                f"model card {card_path} is not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8"
            ) from None
    else:
        params = sum(p.numel() for p in model.parameters())
        card = render_model_card(CardInfo(name, args, params=params, checkpoint_name=record.checkpoint))
    card = re.sub(r"\A---\n.*?\n---\n", "", card, flags=re.S).lstrip()
    relation = (
        f"output = input {offset:+d} pixels per side length (a {min_size + 24 * step} input gives "
        f"{min_size + 24 * step + offset})"
        if offset
        else "output = input size"
    )
    return (
        f"{card.rstrip()}\n\n## This bioimage.io package\n\n"
        f"- Input `input`: (batch, channel, y, x) uint8 images; preprocessing casts to float32 and divides by 255.\n"
        f"- Sizes: y and x = {min_size} + {step}n pixels; {relation}.\n"
        f"- Output `output`: (batch, channel, y, x) float32 softmax probabilities, one channel per class "
        f"(channel 1: cell interior for the ISBI 2012 models).\n"
        "- Weights: PyTorch state dict (needs `pip install unet-zoo`), TorchScript and ONNX where exportable.\n"
        "- Large images: predict in tiles (the tools' tiling, or `unet-zoo predict`, which mirror-pads borders).\n"
        "\n## Validation\n\n"
        "The test output is the PyTorch model's softmax on the test input. The TorchScript and ONNX weights were "
        "run (torch.jit.load, onnxruntime) on random inputs of two sizes and batch sizes before packaging and "
        "differ from PyTorch by at most 1e-4 in the probabilities. The package was written with bioimageio.spec; "
        "check it with `bioimageio test <package>.zip`.\n"
    )


def _write_files(folder: Path, model: nn.Module, image: np.ndarray, probs: np.ndarray, documentation: str) -> None:
    """Test and sample tensors, cover, documentation, architecture source, environment and the state dict."""
    np.save(folder / "test_input.npy", image)
    np.save(folder / "test_output.npy", probs)
    tifffile.imwrite(folder / "sample_input.tif", image[0, 0])
    tifffile.imwrite(folder / "sample_output.tif", probs[0, 1 if probs.shape[1] > 1 else 0])
    _cover(image, probs, folder / "cover.png")
    (folder / "README.md").write_text(documentation, encoding="utf-8")
    (folder / ARCHITECTURE_FILE).write_text(ARCHITECTURE_SOURCE, encoding="utf-8")
    (folder / "environment.yaml").write_text(ENVIRONMENT, encoding="utf-8")
    torch.save(Probabilities(model).state_dict(), folder / "weights.pt")


def _weights(
    bio: Any,
    model: nn.Module,
    folder: Path,
    arch_name: str,
    args: dict[str, Any],
    formats: tuple[str, ...],
    note: Callable[[str], None],
) -> Any:
    """The weights description: the state dict, plus TorchScript / ONNX where they export and match torch."""
    torch_version = bio.Version(torch.__version__.split("+")[0])
    weights: dict[str, Any] = dict(
        pytorch_state_dict=bio.PytorchStateDictWeightsDescr(
            source=folder / "weights.pt",
            architecture=bio.ArchitectureFromFileDescr(
                source=folder / ARCHITECTURE_FILE,
                callable=ARCHITECTURE_CALLABLE,
                kwargs={"model_name": arch_name, "model_args": args},
            ),
            pytorch_version=torch_version,
            dependencies=bio.FileDescr(source=folder / "environment.yaml"),
        )
    )
    if "torchscript" in formats:
        try:
            data = torchscript_bytes(model)
            check_export(model, load_torchscript(data))
            (folder / "weights_torchscript.pt").write_bytes(data)
            weights["torchscript"] = bio.TorchscriptWeightsDescr(
                source=folder / "weights_torchscript.pt", parent="pytorch_state_dict", pytorch_version=torch_version
            )
        except Exception as err:  # noqa: BLE001  any tracer failure: leave the format out and say why
            note(f"torchscript weights left out: {err}")
    if "onnx" in formats:
        try:
            data = onnx_bytes(model)
            check_export(model, session_forward(onnxruntime_session(data)))
            (folder / "weights.onnx").write_bytes(data)
            weights["onnx"] = bio.OnnxWeightsDescr(
                source=folder / "weights.onnx", parent="pytorch_state_dict", opset_version=ONNX_OPSET
            )
        except ImportError:
            raise
        except Exception as err:  # noqa: BLE001
            note(f"onnx weights left out: {err}")
    return bio.WeightsDescr(**weights)


def _input(bio: Any, folder: Path, in_channels: int, min_size: int, step: int) -> Any:
    """The uint8 input tensor: (batch, channel, y, x), y and x = min_size + step * n, scaled to [0, 1] by preprocessing."""

    def space(axis: str) -> Any:
        return bio.SpaceInputAxis(id=bio.AxisId(axis), size=bio.ParameterizedSize(min=min_size, step=step))

    return bio.InputTensorDescr(
        id=bio.TensorId("input"),
        description="EM image, uint8",
        axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=[f"c{i}" for i in range(in_channels)]), space("y"), space("x")],
        test_tensor=bio.FileDescr(source=folder / "test_input.npy"),
        sample_tensor=bio.FileDescr(source=folder / "sample_input.tif"),
        data=bio.IntervalOrRatioDataDescr(type="uint8"),
        preprocessing=[
            bio.EnsureDtypeDescr(kwargs=bio.EnsureDtypeKwargs(dtype="float32")),
            bio.ScaleLinearDescr(kwargs=bio.ScaleLinearKwargs(gain=1 / 255)),
            # explicit: otherwise the spec appends a cast back to the raw data type (uint8)
            bio.EnsureDtypeDescr(kwargs=bio.EnsureDtypeKwargs(dtype="float32")),
        ],
    )


def _output(bio: Any, folder: Path, num_classes: int, offset: int) -> Any:
    """The float32 softmax output: one channel per class, each side `offset` pixels off the input's."""

    def space(axis: str) -> Any:
        ref = bio.SizeReference(tensor_id=bio.TensorId("input"), axis_id=bio.AxisId(axis), offset=offset)
        return bio.SpaceOutputAxis(id=bio.AxisId(axis), size=ref)

    class_names = ["membrane", "cell"] if num_classes == 2 else [f"class{i}" for i in range(num_classes)]
    return bio.OutputTensorDescr(
        id=bio.TensorId("output"),
        description="softmax probability per class",
        axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=class_names), space("y"), space("x")],
        test_tensor=bio.FileDescr(source=folder / "test_output.npy"),
        sample_tensor=bio.FileDescr(source=folder / "sample_output.tif"),
        data=bio.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
    )


def export_bioimageio(
    model: nn.Module,
    path: str | Path,
    *,
    sample: np.ndarray | None = None,
    name: str | None = None,
    formats: tuple[str, ...] = ("torchscript", "onnx"),
    note: Callable[[str], None] | None = None,
) -> Path:
    """Write a bioimage.io model package (.zip) of `model` to `path` (replaced atomically); returns `path`.

    sample: 2-D uint8 image for the test tensors and cover (default: `default_sample()`); name: the
    package name (default: the checkpoint name or "unet_zoo <architecture>"); formats: weights beside the
    state dict, each kept only when it exports and matches torch within 1e-4; note: told what was left out.
    """
    spec = require("bioimageio.spec", "writing bioimage.io packages")
    from bioimageio.spec.model import v0_5 as bio  # the optional export extra: imported when used

    arch_name, args = model_identity(model)
    model = copy.deepcopy(model).to("cpu", torch.float32).eval()  # the caller's model stays where it is
    min_size, step, offset = size_parameters(model)
    documentation = _documentation(model, arch_name, args, min_size, step, offset)  # a bad card: refused before work
    name = name or provenance_of(model).checkpoint or f"unet_zoo {arch_name}"
    num_classes = int(args.get("num_classes", getattr(model, "num_classes", 2)))
    in_channels = int(args.get("in_channels", getattr(model, "in_channels", 1)))
    image = _test_image(model, default_sample() if sample is None else sample)
    if image.shape[1] != in_channels:
        raise ValueError(f"sample has {image.shape[1]} channel(s); the model takes {in_channels}")
    probs = torch_probabilities(model, image.astype(np.float32) / 255.0)

    with tempfile.TemporaryDirectory(prefix="unet_zoo-bioimageio-") as tmp:
        folder = Path(tmp)
        _write_files(folder, model, image, probs, documentation)
        descr = bio.ModelDescr(
            name=name,
            description=f"U-Net ({arch_name}) from unet_zoo, after Ronneberger et al. 2015: per-pixel class "
            "probabilities for electron-microscopy membrane segmentation (ISBI 2012).",
            authors=[bio.Author(name="unet_zoo developers")],
            cite=[
                bio.CiteEntry(text=PAPER_CITATION, url=PAPER_URL),
                bio.CiteEntry(text=ISBI_CITATION, doi=bio.Doi(ISBI_DOI)),
            ],
            license=bio.LicenseId("MIT"),
            tags=TAGS,
            documentation=bio.FileDescr(source=folder / "README.md"),
            covers=[bio.FileDescr(source=folder / "cover.png")],
            inputs=[_input(bio, folder, in_channels, min_size, step)],
            outputs=[_output(bio, folder, num_classes, offset)],
            weights=_weights(bio, model, folder, arch_name, args, formats, note or (lambda message: None)),
        )
        atomic_write_with(path, lambda out: spec.save_bioimageio_package(descr, output_path=Path(out)), suffix=".zip")
    return Path(path)


__all__ = ["default_sample", "export_bioimageio", "size_parameters"]
