"""Training recipes: plain TOML files holding every hyperparameter, loaded into typed dataclasses.

A recipe has the sections ``[recipe]`` (name, description, notes, deviations), ``[model]``, ``[data]``,
``[loss]``, ``[augment]``, ``[optimizer]``, ``[schedule]``, ``[train]`` and ``[eval]``; see
``recipes/isbi-original.toml`` for every key. Unknown keys and bad values raise `RecipeError` naming
the file, the key and what is allowed.

>>> from unet_zoo.training.recipes import load_recipe
>>> load_recipe("tiny").model.name
'small'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from unet_zoo.data.augment import AugmentConfig
from unet_zoo.models.registry import ModelArgsError, check_model_args, get_entry
from unet_zoo.models.sizes import nearest_valid_sizes_text, output_size
from unet_zoo.paper import parse_target
from unet_zoo.utils.errors import InputError
from unet_zoo.utils.files import source_checkout_root
from unet_zoo.utils.suggest import close_matches, did_you_mean

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as the tomli package (a dependency there)
    import tomli as tomllib

PACKAGE_RECIPES_DIR = Path(__file__).resolve().parents[1] / "_recipes"
"""The recipes inside an installed package: wheels map the repository's ``recipes/`` to ``unet_zoo/_recipes/``
(pyproject.toml, ``[tool.setuptools] package-dir``)."""


def _source_recipes_dir() -> Path | None:
    """The top-level ``recipes/`` of a source checkout (next to pyproject.toml), or None when installed."""
    root = source_checkout_root()
    return root / "recipes" if root is not None and (root / "recipes").is_dir() else None


RECIPES_DIR = _source_recipes_dir() or PACKAGE_RECIPES_DIR
"""Where named recipes live: the checkout's ``recipes/`` (editable installs), else the package's ``_recipes/``."""


def recipe_dirs() -> list[Path]:
    """Folders searched for named recipes, in order: the checkout's ``recipes/``, then the package's ``_recipes/``."""
    return [d for d in dict.fromkeys((RECIPES_DIR, PACKAGE_RECIPES_DIR)) if d.is_dir()]


class RecipeError(InputError):
    """A recipe file is missing, malformed or holds an unknown key or a bad value."""


@dataclass(frozen=True)
class RecipeInfo:
    name: str = ""
    description: str = ""
    notes: str = ""
    deviations: list[str] = field(default_factory=list)  # every departure from the paper, reported on the card
    checkpoint: str = ""  # the published checkpoint this recipe trains (cards/<checkpoint>/); "" = the recipe's name
    # held-out targets the model card checks (with TTA): score -> "<= 0.0382" or ">= 0.980" (unet_zoo.paper.SCORE_LABELS)
    targets: dict[str, str] = field(default_factory=dict)
    target_notes: str = ""  # what was measured or tried about the targets, printed under them on the card


@dataclass(frozen=True)
class ModelCfg:
    name: str = "original"  # a registered architecture (unet_zoo.list_models())
    args: dict[str, Any] = field(default_factory=dict)  # overrides passed to create_model
    # start from these weights instead of random ones: a published checkpoint name, a checkpoint or run folder,
    # or a Hub id (unet_zoo.hub.pretrained.from_pretrained); its tensors must match the model's names and shapes
    init_from: str = ""


@dataclass(frozen=True)
class DataCfg:
    source: Literal["isbi2012", "synthetic", "files"] = "isbi2012"
    data_dir: str = ""  # "" = the source's default (isbi2012: UNET_ZOO_DATA_DIR or the cache folder)
    k: int = 5  # k-fold split of the 30 training slices into train / held-out validation
    fold: int = 4  # held-out fold, counted from 0: fold 4 of k=5 = slices 24..29 (unet_zoo.data.split.split_slices)
    tile: int = 572  # input tile side in pixels; must be valid for the model (unet_zoo.models.sizes)
    synthetic_slices: int = 8  # source = "synthetic" only: slices of generated cell images
    synthetic_size: int = 64  # source = "synthetic" only: side of each slice in pixels
    # source = "files" only (unet_zoo.data.files): your images and labels, each a TIFF (stack), a folder of
    # TIFF/PNG files matched by name, or a Zarr array
    images: str = ""
    labels: str = ""
    val_images: str = ""  # held-out images and labels; "" = hold out the last slices, or a region of 1-2 slices
    val_labels: str = ""
    foreground: Literal["cell", "membrane"] = "cell"  # binary masks: what the non-zero value means
    # instances: one ID per cell, 0 = boundary; scribbles: 0 = not labelled, 1 = membrane, 2 = cell
    label_form: Literal["auto", "binary", "instances", "scribbles"] = "auto"
    boundary_width: int = 2  # instances: membrane width in pixels at each contact between two cells
    pixel_size: float = 0.0  # the data's pixel size in nm; 0 = from the files' metadata (TIFF tags, OME-Zarr scale)
    resample_to: float = 0.0  # rescale the data to this pixel size in nm before training (the model's); 0 = as is


@dataclass(frozen=True)
class LossCfg:
    w0: float = 10.0  # border weight (paper: 10)
    sigma: float = 5.0  # border width in pixels (paper: ~5)
    balance: bool = True  # add the class-frequency term w_c of the weight map (paper: yes); false: w_c = 1
    # px of dense labels on each side of every membrane/cell border left out of the loss (files data only; the
    # membranes' centre line stays in); > 0 also trains with masked weights, one per class, instead of w0's
    ignore_border: int = 0
    # masked losses (scribbles; dense labels with ignore_border > 0): the share of the loss carried by the labelled
    # membrane pixels, the rest by the cell pixels; 0.5 = both classes weigh the same
    membrane_share: float = 0.5


@dataclass(frozen=True)
class OptimizerCfg:
    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.99  # sgd only (paper: 0.99)
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adam/adamw only
    grad_clip: float = 0.0  # max global gradient norm; 0 = off


@dataclass(frozen=True)
class ScheduleCfg:
    kind: Literal["constant", "cosine", "step"] = "constant"
    warmup_steps: int = 0  # linear warm-up from 0 to lr
    min_lr_ratio: float = 0.0  # cosine: final lr = lr * min_lr_ratio
    step_every: int = 0  # step: multiply lr by gamma every step_every steps
    gamma: float = 0.1


@dataclass(frozen=True)
class TrainCfg:
    steps: int = 1000  # optimiser steps
    batch_size: int = 1  # tiles per step and per process (global batch = batch_size * world size)
    seed: int = 0
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 on CUDA with bf16; on the CPU as measured faster
    channels_last: Literal["auto", "on", "off"] = "auto"  # auto = on for CUDA
    compile: bool = False  # torch.compile the model
    checkpoint_every: int = 500  # steps between atomic checkpoints (+ one at the end)
    log_every: int = 10  # steps between JSONL log lines
    eval_every: int = 0  # steps between validation-loss evaluations; 0 = only at the end
    eval_tiles: int = 4  # validation tiles (centre crops of held-out slices) for the curve
    overlay_slices: int = 3  # held-out slices drawn in the predictions PNG at the end


@dataclass(frozen=True)
class EvalCfg:
    tta: bool = True  # 8-fold flip/rotation test-time augmentation for the final scores
    batch_size: int = 4


@dataclass(frozen=True)
class Recipe:
    """Every hyperparameter of one training run (see the module docstring for the TOML layout)."""

    recipe: RecipeInfo = field(default_factory=RecipeInfo)
    model: ModelCfg = field(default_factory=ModelCfg)
    data: DataCfg = field(default_factory=DataCfg)
    loss: LossCfg = field(default_factory=LossCfg)
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # [augment]: unet_zoo.data.augment.AugmentConfig
    optimizer: OptimizerCfg = field(default_factory=OptimizerCfg)
    schedule: ScheduleCfg = field(default_factory=ScheduleCfg)
    train: TrainCfg = field(default_factory=TrainCfg)
    eval: EvalCfg = field(default_factory=EvalCfg)
    source: str = ""  # path of the TOML file it was read from
    # the keys the [augment] table states, in its order: `as_dict` writes these (and any value changed from
    # AugmentConfig's default), so recipe.json keeps the table as it was written
    augment_keys: tuple[str, ...] = field(default=(), repr=False)

    @property
    def name(self) -> str:
        return self.recipe.name

    def with_overrides(self, **section_values: dict[str, Any]) -> Recipe:
        """A copy with some values replaced, e.g. ``r.with_overrides(train={"steps": 10})`` (validated)."""
        raw = self.as_dict()
        for section, values in section_values.items():
            if section not in raw or not isinstance(raw[section], dict):
                raise RecipeError(f"unknown recipe section {section!r}; sections: {', '.join(_SECTIONS)}")
            raw[section] = {**raw[section], **values}
        return recipe_from_dict(raw, source=self.source)

    def as_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON/TOML-serialisable), the inverse of `recipe_from_dict`.

        ``augment`` is the ``[augment]`` table: the keys it states (`augment_keys`), plus any value that
        differs from `AugmentConfig`'s default; ranges as lists."""
        data = {name: dataclasses.asdict(getattr(self, name)) for name in _SECTIONS}
        values, defaults = self.augment.as_dict(), AugmentConfig().as_dict()
        changed = [k for k, v in values.items() if k not in self.augment_keys and v != defaults[k]]
        data["augment"] = {k: values[k] for k in [*self.augment_keys, *changed]}
        return data


_NOT_SECTIONS = ("source", "augment_keys")
_SECTIONS = [f.name for f in dataclasses.fields(Recipe) if f.name not in _NOT_SECTIONS]


def _check_value(where: str, key: str, value: Any, hint: Any) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        if value not in args:
            raise RecipeError(f"{where}.{key} = {value!r} is not allowed; choose one of {', '.join(map(repr, args))}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{where}.{key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{where}.{key} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(f"{where}.{key} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise RecipeError(f"{where}.{key} must be a string, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise RecipeError(f"{where}.{key} must be a list, got {value!r}")
        return [_check_value(where, f"{key}[{i}]", v, args[0]) for i, v in enumerate(value)]
    if origin is tuple and Ellipsis not in args:  # a fixed-length list, e.g. a (low, high) range
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise RecipeError(f"{where}.{key} must be a list of {len(args)} values, got {value!r}")
        return [_check_value(where, f"{key}[{i}]", v, hint) for i, (v, hint) in enumerate(zip(value, args))]
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{where}.{key} must be a table, got {value!r}")
        return dict(value)
    return value


def _build(cls: type, where: str, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise RecipeError(f"[{where}] must be a TOML table, got {raw!r}")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in raw.items():
        if key not in names:
            close = close_matches(key, names, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RecipeError(f"unknown key {where}.{key}{hint}; allowed keys in [{where}]: {', '.join(names)}")
        values[key] = _check_value(where, key, value, hints[key])
    return cls(**values)


def _validate(recipe: Recipe) -> None:
    def positive(section: str, key: str, value: float, allow_zero: bool = False) -> None:
        if value < 0 or (value == 0 and not allow_zero):
            raise RecipeError(f"{section}.{key} must be {'>= 0' if allow_zero else '> 0'}, got {value}")

    try:
        entry = get_entry(recipe.model.name)
    except KeyError as err:
        raise RecipeError(f"model.name: {err.args[0]}") from None
    args = {**entry.default_args, **recipe.model.args}
    try:
        check_model_args(recipe.model.name, args)
    except ModelArgsError as err:
        raise RecipeError(f"[model.args]: {err}; see docs/security.md for the bounds") from None
    t = recipe.train
    positive("train", "steps", t.steps)
    positive("train", "batch_size", t.batch_size)
    positive("train", "checkpoint_every", t.checkpoint_every)
    positive("train", "log_every", t.log_every)
    positive("train", "eval_every", t.eval_every, allow_zero=True)
    positive("optimizer", "lr", recipe.optimizer.lr)
    positive("optimizer", "weight_decay", recipe.optimizer.weight_decay, allow_zero=True)
    positive("optimizer", "grad_clip", recipe.optimizer.grad_clip, allow_zero=True)
    if not 0 <= recipe.optimizer.momentum < 1:
        raise RecipeError(f"optimizer.momentum must be in [0, 1), got {recipe.optimizer.momentum}")
    if len(recipe.optimizer.betas) != 2:
        raise RecipeError(f"optimizer.betas must hold two numbers, got {recipe.optimizer.betas}")
    for score, bound in recipe.recipe.targets.items():
        try:
            parse_target(score, bound)
        except ValueError as err:
            raise RecipeError(f"recipe.targets: {err}") from None
    positive("loss", "sigma", recipe.loss.sigma)
    positive("loss", "w0", recipe.loss.w0, allow_zero=True)
    positive("loss", "ignore_border", recipe.loss.ignore_border, allow_zero=True)
    if not 0 < recipe.loss.membrane_share < 1:
        share = recipe.loss.membrane_share
        raise RecipeError(f"loss.membrane_share must be between 0 and 1 (0.5: both classes weigh the same), got {share}")
    positive("data", "k", recipe.data.k)
    if not 0 <= recipe.data.fold < recipe.data.k:
        raise RecipeError(f"data.fold must be in 0..{recipe.data.k - 1} (data.k = {recipe.data.k}), got {recipe.data.fold}")
    d = recipe.data
    if d.source == "files" and not (d.images and d.labels):
        raise RecipeError('data.source = "files" needs data.images and data.labels (paths to your images and labels)')
    if bool(d.val_images) != bool(d.val_labels):
        raise RecipeError("data.val_images and data.val_labels go together: give both, or neither")
    positive("data", "boundary_width", d.boundary_width)
    positive("data", "pixel_size", d.pixel_size, allow_zero=True)
    positive("data", "resample_to", d.resample_to, allow_zero=True)
    if entry.family == "unet":
        depth, padding = args.get("depth", 4), args.get("padding", 0)
        if output_size(recipe.data.tile, depth, padding) is None:
            raise RecipeError(
                f"data.tile = {recipe.data.tile} is not a valid input size for {recipe.model.name!r}; "
                f"nearest valid sizes: {nearest_valid_sizes_text(recipe.data.tile, depth, padding)}"
            )


def _build_augment(raw: Any) -> AugmentConfig:
    """The ``[augment]`` table as an `AugmentConfig`: keys and types checked like every table, then
    AugmentConfig's own checks (ranges, image_mode)."""
    try:
        return _build(AugmentConfig, "augment", raw)
    except RecipeError:
        raise
    except (TypeError, ValueError) as err:
        raise RecipeError(f"[augment]: {err}") from None


def recipe_from_dict(raw: dict[str, Any], source: str = "") -> Recipe:
    """Build and validate a `Recipe` from nested dicts (as read from TOML); raises `RecipeError`."""
    where = f" in {source}" if source else ""
    unknown = set(raw) - set(_SECTIONS)
    if unknown:
        raise RecipeError(f"unknown section(s) {', '.join(sorted(unknown))}{where}; sections: {', '.join(_SECTIONS)}")
    hints = get_type_hints(Recipe)
    parts: dict[str, Any] = {}
    try:
        for section in _SECTIONS:
            value = raw.get(section, {})
            if section == "augment":
                parts[section] = _build_augment(value)
                parts["augment_keys"] = tuple(value)
            else:
                parts[section] = _build(hints[section], section, value)
        recipe = Recipe(**parts, source=source)
        _validate(recipe)
    except RecipeError as err:
        raise RecipeError(f"{err}{where}") from None
    return recipe


def available_recipes() -> list[str]:
    """Names of the recipes shipped in the repository's ``recipes/`` folder."""
    return sorted({p.stem for d in recipe_dirs() for p in d.glob("*.toml")})


def recipe_path(name_or_path: str | Path) -> Path:
    """The TOML file for a recipe name ('isbi-small') or a path ('recipes/isbi-small.toml')."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    for folder in recipe_dirs():
        named = folder / f"{path.stem if path.suffix == '.toml' else name_or_path}.toml"
        if named.is_file():
            return named
    known = available_recipes()
    hint = did_you_mean(str(name_or_path), known, n=2, cutoff=0.6)
    raise RecipeError(
        f"no recipe {str(name_or_path)!r}: not a file and not a name in {RECIPES_DIR}.{hint} "
        f"Known recipes: {', '.join(known) or 'none'}"
    )


def load_recipe(name_or_path: str | Path) -> Recipe:
    """Read and validate a recipe by name ('isbi-original') or TOML path; raises `RecipeError`."""
    path = recipe_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise RecipeError(f"{path} is not valid TOML: {err}") from None
    recipe = recipe_from_dict(raw, source=str(path))
    if not recipe.recipe.name:
        recipe = dataclasses.replace(recipe, recipe=dataclasses.replace(recipe.recipe, name=path.stem))
    return recipe


__all__ = [
    "Recipe",
    "RecipeError",
    "RecipeInfo",
    "ModelCfg",
    "DataCfg",
    "LossCfg",
    "OptimizerCfg",
    "ScheduleCfg",
    "TrainCfg",
    "EvalCfg",
    "RECIPES_DIR",
    "recipe_dirs",
    "available_recipes",
    "load_recipe",
    "recipe_from_dict",
    "recipe_path",
]
