"""The model registry: named builders over the shared blocks, in the style of timm.

A variant is a few lines: a function decorated with `register_model` that returns its default
architecture arguments; `create_model(name, **overrides)` merges the caller's overrides and builds.
Pretrained checkpoints (`isbi-original`, ...) are listed in `PRETRAINED` with their pinned Hub
repo, revision and weight sha256. The registry is data and builders only: it reads no file and no network;
loading a checkpoint is the Hub layer's `unet_zoo.from_pretrained`, which builds through `create_model`.
"""

from __future__ import annotations

import fnmatch
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn
from torch.overrides import TorchFunctionMode

from unet_zoo.models.provenance import Provenance, set_provenance
from unet_zoo.models.unet import TimmUNet, UNet
from unet_zoo.utils.errors import InputError
from unet_zoo.utils.suggest import did_you_mean


@dataclass(frozen=True)
class ModelEntry:
    """One registered architecture: its name, the class it builds and that class's default arguments."""

    name: str
    model_class: type[nn.Module]
    default_args: dict[str, Any]
    default_tile: int
    description: str
    family: str = "unet"


@dataclass(frozen=True)
class PretrainedCfg:
    """A published checkpoint: which architecture, where on the Hub, and what its weights hash to."""

    name: str
    architecture: str
    hf_hub_id: str
    revision: str = "main"
    sha256: str | None = None
    config_sha256: str | None = None
    filename: str = "model.safetensors"
    dataset: str = "isbi2012"
    license: str = "mit"
    notes: str = ""
    metrics: dict[str, float] = field(default_factory=dict)


_MODELS: dict[str, ModelEntry] = {}

# Published checkpoints, loaded with `unet_zoo.from_pretrained(name)` (unet_zoo/hub/factory.py). Each entry pins:
#   hf_hub_id      the Hub repo that `unet-zoo push cards/<name> --repo-id ...` publishes,
#   revision       the branch to download: "main". The Hub assigns a commit only when a folder is pushed, so no
#                  commit is pinned; what makes the pin a pin are the two digests below, checked on every load,
#   sha256         `unet_zoo.hub.pretrained.weights_sha256("cards/<name>")`: sha256 of model.safetensors, or of the shards
#                  concatenated in file-name order; a download (or a local card) that does not match is refused,
#   config_sha256  sha256 of config.json (architecture, arguments, segmentation defaults); a mismatch is refused.
#                  README.md (the card) is documentation, not used for loading, and is not pinned,
#   metrics        the card's held-out scores (scores.json; tests check they are the card's numbers).
# The entries are at the end of this file, after the architectures they use. A source checkout holds the
# same folders in cards/<name>/ and loads them from there without any network when both digests match.
PRETRAINED: dict[str, PretrainedCfg] = {}


class ModelArgsError(InputError):
    """Architecture arguments (a checkpoint's ``model_args``, a recipe's ``[model.args]``) of the wrong type or out
    of the bounds of `ARG_BOUNDS`, or a model that would exceed `MAX_PARAMETERS`."""


@dataclass(frozen=True)
class ArgBound:
    """What one architecture argument may be: a `kind` ("int", "float", "bool", "str", "ints": a list of ints)
    within [low, high] (numbers, list lengths use `max_items`) or one of `choices`."""

    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    max_items: int = 8

    def problem(self, value: Any) -> str | None:
        """Why `value` is not allowed (a short phrase), or None when it is."""
        if self.choices is not None:
            return (
                None if value in self.choices and type(value) is type(self.choices[0]) else f"must be one of {list(self.choices)}"
            )
        if self.kind == "bool":
            return None if isinstance(value, bool) else "must be true or false"
        if self.kind == "str":
            return None if isinstance(value, str) and 0 < len(value) <= 100 else "must be a name (at most 100 characters)"
        if self.kind == "ints":
            if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= self.max_items:
                return f"must be a list of 1 to {self.max_items} whole numbers in [{self.low:g}, {self.high:g}]"
            bad = [v for v in value if self._number_problem(v, integer=True)]
            return f"must hold whole numbers in [{self.low:g}, {self.high:g}], got {bad[0]!r}" if bad else None
        return self._number_problem(value, integer=self.kind == "int")

    def _number_problem(self, value: Any, *, integer: bool) -> str | None:
        bounds = f"in [{self.low:g}, {self.high:g}]"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
            return f"must be a {'whole number' if integer else 'number'} {bounds}"
        if (
            not math.isfinite(value)
            or (self.low is not None and value < self.low)
            or (self.high is not None and value > self.high)
        ):
            return f"must be {bounds}"
        return None


# The bounds a checkpoint's model_args must keep, per model family (docs/security.md lists them). They hold every
# registered variant and much larger ones, but refuse what would only exhaust memory or time (depth 10**6).
ARG_BOUNDS: dict[str, dict[str, ArgBound]] = {
    "unet": {
        "in_channels": ArgBound("int", 1, 64),
        "num_classes": ArgBound("int", 1, 1024),
        "base_channels": ArgBound("int", 1, 128),
        "depth": ArgBound("int", 1, 8),
        "padding": ArgBound("int", choices=(0, 1)),
        "up_mode": ArgBound("str", choices=("transpose", "bilinear")),
        "norm": ArgBound("str", choices=("none", "batch", "group", "instance")),
        "dropout": ArgBound("float", 0, 1),
        "init": ArgBound("str", choices=("paper", "default")),
    },
    "timm": {
        "encoder": ArgBound("str"),
        "in_channels": ArgBound("int", 1, 64),
        "num_classes": ArgBound("int", 1, 1024),
        "decoder_channels": ArgBound("ints", 1, 4096),
        "norm": ArgBound("str", choices=("none", "batch", "group", "instance")),
        "pretrained_encoder": ArgBound("bool"),
    },
}
MAX_PARAMETERS = 200_000_000  # per model: 800 MB of float32 weights (the paper's U-Net has 31 million)


def check_model_args(name: str, args: dict[str, Any], source: str = "") -> None:
    """ModelArgsError unless every argument of `args` for architecture `name` has the type and range of its
    family's `ARG_BOUNDS` (architectures registered outside these families are only checked by their class)."""
    entry = get_entry(name)
    bounds = ARG_BOUNDS.get(entry.family, {})
    where = f"{source}: " if source else ""
    for key, value in args.items():
        bound = bounds.get(key)
        problem = bound.problem(value) if bound is not None else None
        if problem:
            raise ModelArgsError(f"{where}model argument {key}={value!r} of {name!r} {problem}")


class _SkipRandomInit(TorchFunctionMode):
    """Random in-place initialisation of meta tensors is skipped: it changes no shape, and on meta tensors torch
    runs it through its reference implementations, whose first use imports torch._dynamo (seconds)."""

    _RANDOM = frozenset({"normal_", "uniform_", "bernoulli_", "random_", "exponential_", "log_normal_", "cauchy_"})

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        first = args[0] if args else None
        if getattr(func, "__name__", "") in self._RANDOM and getattr(first, "is_meta", False):
            return first
        return func(*args, **(kwargs or {}))


def expected_state_shapes(name: str, args: dict[str, Any], source: str = "") -> dict[str, tuple[int, ...]]:
    """{tensor name: shape} of the state dict `create_model(name, **args)` would have, found without allocating
    it (built on the ``meta`` device, after `check_model_args`); ModelArgsError above `MAX_PARAMETERS`."""
    import torch

    check_model_args(name, args, source)
    with torch.device("meta"), _SkipRandomInit():
        model = create_model(name, **args)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    count = sum(p.numel() for p in model.parameters())
    if count > MAX_PARAMETERS:
        where = f"{source}: " if source else ""
        raise ModelArgsError(
            f"{where}{name!r} with {args} has {count:,} parameters, more than the {MAX_PARAMETERS:,} a checkpoint may "
            "ask for; it is refused before anything is allocated"
        )
    return shapes


def register_model(
    name: str, *, default_tile: int, description: str, model_class: type[nn.Module] = UNet, family: str = "unet"
) -> Callable[[Callable[[], dict[str, Any]]], Callable[[], dict[str, Any]]]:
    """Decorator: register a function returning default architecture arguments under `name`."""

    def decorator(default_args: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = ModelEntry(name, model_class, default_args(), default_tile, description, family)
        return default_args

    return decorator


def register_pretrained(cfg: PretrainedCfg) -> PretrainedCfg:
    """Add a published checkpoint to `PRETRAINED` (its architecture must be registered)."""
    get_entry(cfg.architecture)
    PRETRAINED[cfg.name] = cfg
    return cfg


def _unknown(name: str, known: list[str], what: str) -> KeyError:
    return KeyError(f"unknown {what} {name!r}.{did_you_mean(name, known)} Known: {', '.join(known)}")


def get_entry(name: str) -> ModelEntry:
    """The registry entry of architecture `name`; KeyError listing close matches if unknown."""
    try:
        return _MODELS[name]
    except KeyError:
        raise _unknown(name, list(_MODELS), "model") from None


def get_pretrained_cfg(name: str) -> PretrainedCfg:
    """The published checkpoint `name`; KeyError listing close matches if unknown."""
    try:
        return PRETRAINED[name]
    except KeyError:
        raise _unknown(name, list(PRETRAINED), "pretrained checkpoint") from None


def list_models(filter: str = "", pretrained: bool = False) -> list[str]:
    """Registered architecture names in registration order, optionally fnmatch-filtered ('*pad*').

    With ``pretrained=True`` only architectures that have a published checkpoint are listed.
    """
    names = list(_MODELS)
    if filter:
        names = [n for n in names if fnmatch.fnmatch(n, filter)]
    if pretrained:
        with_weights = {cfg.architecture for cfg in PRETRAINED.values()}
        names = [n for n in names if n in with_weights]
    return names


def list_pretrained(filter: str = "") -> list[str]:
    """Names of published checkpoints (e.g. 'isbi-original'), optionally fnmatch-filtered."""
    return [n for n in PRETRAINED if not filter or fnmatch.fnmatch(n, filter)]


def model_args(name: str, **overrides: Any) -> dict[str, Any]:
    """The full argument dict `create_model(name, **overrides)` passes to the model class."""
    entry = get_entry(name)
    unknown = set(overrides) - set(_init_params(entry.model_class))
    if unknown:
        raise TypeError(
            f"{name!r} does not take {', '.join(sorted(unknown))}; its arguments are {', '.join(_init_params(entry.model_class))}"
        )
    return {**entry.default_args, **overrides}


def _init_params(model_class: type[nn.Module]) -> list[str]:
    return [p for p in inspect.signature(model_class.__init__).parameters if p != "self"]


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build architecture `name` with random (paper) initialisation; keyword overrides change its arguments.

    The model's `Provenance` (``unet_zoo.models.provenance.provenance_of``, kind ``"built"``) records the
    architecture and its full arguments, so it can be saved and rebuilt. Trained weights: `unet_zoo.from_pretrained`.
    """
    if "pretrained" in overrides:
        raise TypeError(
            f"the registry builds architectures only: load trained weights with unet_zoo.from_pretrained(name) "
            f"(checkpoints: {', '.join(PRETRAINED) or 'none yet'}), not create_model({name!r}, pretrained=...)"
        )
    entry = get_entry(name)
    args = model_args(name, **overrides)
    model = entry.model_class(**args)
    return set_provenance(model, Provenance(architecture=name, args=args, kind="built", source=name))


def checkpoint_of(architecture: str) -> str:
    """The first published checkpoint of `architecture` ('small' -> 'isbi-small'); KeyError for an unknown
    architecture, ValueError when none is published."""
    get_entry(architecture)  # an unknown name: KeyError with close matches, not "no checkpoint"
    matches = [cfg.name for cfg in PRETRAINED.values() if cfg.architecture == architecture]
    if not matches:
        raise ValueError(f"no pretrained checkpoint for {architecture!r}; checkpoints: {', '.join(PRETRAINED) or 'none yet'}")
    return matches[0]


# --- The paper's network and its variants -------------------------------------------------------


@register_model("original", default_tile=572, description="The paper's U-Net (Fig. 1): valid 3x3 convs, 572->388")
def original() -> dict[str, Any]:
    return dict(in_channels=1, num_classes=2, base_channels=64, depth=4, padding=0, up_mode="transpose")


@register_model("padded", default_tile=512, description="The paper's U-Net with padded convs: output = input size")
def padded() -> dict[str, Any]:
    return {**original(), "padding": 1}


@register_model("small", default_tile=512, description="Padded U-Net with 32 base channels; fast on CPUs")
def small() -> dict[str, Any]:
    return {**padded(), "base_channels": 32}


@register_model("padded-bilinear", default_tile=512, description="Padded U-Net, bilinear up-sampling + 1x1 conv")
def padded_bilinear() -> dict[str, Any]:
    return {**padded(), "up_mode": "bilinear"}


@register_model("padded-bn", default_tile=512, description="Padded U-Net with batch norm after every conv")
def padded_bn() -> dict[str, Any]:
    return {**padded(), "norm": "batch", "init": "default"}


def _register_timm(encoder: str, description: str) -> None:
    register_model(f"timm-{encoder}", default_tile=512, description=description, model_class=TimmUNet, family="timm")(
        lambda: dict(encoder=encoder, in_channels=1, num_classes=2)
    )


_register_timm("resnet18", "U-Net decoder on a timm ResNet-18 encoder")
_register_timm("resnet34", "U-Net decoder on a timm ResNet-34 encoder")
_register_timm("efficientnet_b0", "U-Net decoder on a timm EfficientNet-B0 encoder")


# --- Published checkpoints (see the comment above PRETRAINED) --------------------------------------

register_pretrained(
    PretrainedCfg(
        name="isbi-small",
        architecture="small",
        hf_hub_id="unet-zoo/isbi-small",
        revision="main",
        sha256="5c62f3308a13c5835088945bdd6a9836f4e5adac04c8df299f55580ed94b5efb",
        config_sha256="0ea91ff8e4425a8c4614b306ca0f2ac04420723fdc5d3642ea05df9982790e4d",
        notes="recipes/isbi-small-cpu.toml, 2400 steps on a 2-core x86-64 CPU (1 h 35 min); "
        "held-out ISBI 2012 slices 24-29 with 8-fold TTA",
        metrics={
            "vrand_thinned": 0.9820833134671663,
            "vinfo_thinned": 0.9830916060520596,
            "rand_error": 0.08005891671330334,
            "warping_error": 0.0013294219970703125,
            "pixel_error": 0.04771534012861178,
        },
    )
)

register_pretrained(
    PretrainedCfg(
        name="isbi-padded",
        architecture="padded",
        hf_hub_id="unet-zoo/isbi-padded",
        revision="main",
        sha256="2a789bb14c55a3f3a9c92360a7dfba7c5866c6e351f7f40ad78aa1a7b424f6b0",
        config_sha256="b66977303eed3bd3ad46db2bfc1532f047f4f593d2265b78cb9f1c3b4780d4e4",
        notes="recipes/isbi-padded-cpu.toml, 2200 steps on a 2-core x86-64 CPU (2 h 44 min); "
        "held-out ISBI 2012 slices 24-29 with 8-fold TTA",
        metrics={
            "vrand_thinned": 0.9812364608445426,
            "vinfo_thinned": 0.9821674490782941,
            "rand_error": 0.08631969497854919,
            "warping_error": 0.0014133453369140625,
            "pixel_error": 0.04744386156743807,
        },
    )
)

register_pretrained(
    PretrainedCfg(
        name="isbi-original",
        architecture="original",
        hf_hub_id="unet-zoo/isbi-original",
        revision="main",
        sha256="9de74828d010e62e3fe2020a046dfa5c3b3348934f40f7241a11007ebb423ef6",
        config_sha256="849669be8926bb6f2f537e4b26d2a20c215a0fee804d12aa2fb7e9671600aefc",
        notes="recipes/isbi-original-cpu.toml, 800 steps of the valid-convolution network on a 2-core x86-64 CPU (43 min) "
        "from isbi-padded (2 h 44 min); held-out ISBI 2012 slices 24-29 with 8-fold TTA",
        metrics={
            "vrand_thinned": 0.9816798791926268,
            "vinfo_thinned": 0.982056758519302,
            "rand_error": 0.09566875796075047,
            "warping_error": 0.0014870961507161458,
            "pixel_error": 0.047435116533305344,
        },
    )
)
