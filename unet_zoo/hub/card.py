"""Model cards: the Hub's README.md (YAML metadata + Markdown body) for a zoo checkpoint.

`render_model_card(CardInfo(...))` writes what is known about a model, one function per section: its
architecture, how it was trained (recipe, steps, hardware, time), its held-out metrics (beside reference scores
when given: the paper's Table 1 for ISBI 2012 checkpoints), its limitations and a usage snippet. The YAML header
(``library_name: unet_zoo``, license, tags, datasets, ``pipeline_tag: image-segmentation``, ``model-index`` with
the metrics) is produced by ``huggingface_hub.ModelCardData``/``EvalResult`` so the Hub (and ``ModelCard.load``)
can parse it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from unet_zoo._version import LIBRARY_NAME
from unet_zoo.models.registry import get_entry
from unet_zoo.models.sizes import output_size
from unet_zoo.paper import PAPER, PAPER_URL, comparison_markdown

METRIC_NAMES: dict[str, str] = {
    "warping_error": "Warping error",
    "rand_error": "Rand error",
    "pixel_error": "Pixel error",
}

# Keys of the `training` dict shown first, with their labels; any other key is listed after them.
TRAINING_FIELDS: dict[str, str] = {
    "recipe": "Recipe",
    "dataset": "Training data",
    "held_out": "Held-out data",
    "pixel_size_nm": "Pixel size (nm)",
    "steps": "Steps",
    "batch_size": "Batch size",
    "optimizer": "Optimiser",
    "learning_rate": "Learning rate",
    "augmentation": "Augmentation",
    "loss": "Loss",
    "seed": "Seed",
    "hardware": "Hardware",
    "precision": "Precision (bf16 autocast or fp32)",
    "time_s": "Training time",
    "tiles_seen": "Tiles seen",
    "initialised_from": "Initialised from",
    "time": "Training time",
    "dtype": "Stored weights",
}

LOCAL_PLACEHOLDER = "path/to/this/folder"
DEFAULT_TAGS = ["unet_zoo", "u-net", "image-segmentation", "biomedical", "electron-microscopy", "pytorch", "safetensors"]


def _format_value(key: str, value: Any) -> str:
    if key == "time_s" and isinstance(value, (int, float)):
        hours, rest = divmod(float(value), 3600)
        return f"{int(hours)} h {rest / 60:.0f} min ({value:.0f} s)" if hours else f"{rest / 60:.1f} min ({value:.0f} s)"
    if key == "pixel_size_nm" and isinstance(value, (int, float)):
        return f"{value:g} x {value:g}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def card_metadata(
    model_name: str,
    *,
    metrics: dict[str, float] | None,
    checkpoint_name: str | None,
    license: str = "mit",
    datasets: list[str] | None = None,
    tags: list[str] | None = None,
    dataset_name: str = "ISBI 2012 EM segmentation challenge",
    split: str = "held-out",
) -> ModelCardData:
    """The card's YAML metadata; ``model-index`` holds one EvalResult per metric (lower is better for ISBI)."""
    datasets = list(datasets) if datasets is not None else ["isbi2012"]
    all_tags = list(dict.fromkeys([*DEFAULT_TAGS, f"unet_zoo:{model_name}", *(tags or [])]))
    eval_results = [
        EvalResult(
            task_type="image-segmentation",
            task_name="Image segmentation",
            dataset_type=datasets[0] if datasets else "custom",
            dataset_name=dataset_name,
            dataset_split=split,
            metric_type=key,
            metric_name=METRIC_NAMES.get(key, key.replace("_", " ").capitalize()),
            metric_value=float(value),
        )
        for key, value in (metrics or {}).items()
    ]
    return ModelCardData(
        model_name=checkpoint_name or model_name,
        library_name=LIBRARY_NAME,
        license=license,
        tags=all_tags,
        datasets=datasets or None,
        pipeline_tag="image-segmentation",
        eval_results=eval_results or None,
    )


def _usage(model_name: str, model_args: dict[str, Any], load_name: str) -> str:
    try:
        tile = get_entry(model_name).default_tile
    except KeyError:
        tile = 512
    if "depth" in model_args and "padding" in model_args:
        out = output_size(tile, model_args["depth"], model_args["padding"])
    else:
        out = tile
    channels, classes = model_args.get("in_channels", 1), model_args.get("num_classes", 2)
    return (
        "```python\n"
        "import torch\n"
        "import unet_zoo\n\n"
        f'model = unet_zoo.from_pretrained("{load_name}")  # eval mode, float32, safetensors only\n'
        f"x = torch.rand(1, {channels}, {tile}, {tile})  # (N, C, H, W) float32 in [0, 1]\n"
        "with torch.no_grad():\n"
        f"    logits = model(x)  # (1, {classes}, {out}, {out}) class logits\n"
        "probabilities = logits.softmax(dim=1)\n"
        "```\n"
    ) + (
        f"\nOffline: run `unet-zoo download {load_name}` once while online; afterwards "
        "`HF_HUB_OFFLINE=1` loads it from the Hugging Face cache.\n"
        if load_name != LOCAL_PLACEHOLDER
        else ""
    )


def _metrics_table(metrics: dict[str, float], reference: dict[str, float] | None) -> str:
    if not reference:
        rows = ["| Metric (lower is better) | This checkpoint (held-out) |", "|---|---|"]
        rows += [f"| {METRIC_NAMES.get(key, key)} | {value:.6g} |" for key, value in metrics.items()]
        return "\n".join(rows) + "\n"
    rows = ["| Metric (lower is better) | This checkpoint (held-out) | Paper, Table 1 (challenge test set) |", "|---|---|---|"]
    for key, value in metrics.items():
        paper = reference.get(key)
        rows.append(f"| {METRIC_NAMES.get(key, key)} | {value:.6g} | {f'{paper:g}' if paper is not None else '-'} |")
    for key, paper in reference.items():
        if key not in metrics:
            rows.append(f"| {METRIC_NAMES.get(key, key)} | not measured | {paper:g} |")
    return "\n".join(rows) + "\n"


def _inference_note(scores: dict[str, Any], without_tta: dict[str, Any] | None, hardware: Any) -> str:
    """How the held-out scores were computed, with the seconds per slice of each way."""
    tta = bool(scores.get("tta"))
    text = (
        f"Evaluated with overlap-tile inference{' and 8-fold test-time augmentation (TTA)' if tta else ''}"
        f" on {scores.get('num_slices', '?')} slices"
    )
    timings = []
    if scores.get("seconds_per_slice"):
        timings.append(f"{scores['seconds_per_slice']:.2f} s per 512x512 slice{' with TTA' if tta else ''}")
    if without_tta and without_tta.get("seconds_per_slice"):
        timings.append(f"{without_tta['seconds_per_slice']:.2f} s without")
    if timings:
        text += " (" + ", ".join(timings) + (f", on {hardware}" if hardware else "") + ")"
    return text + ".\n"


@dataclass
class CardInfo:
    """Everything a model card says about a checkpoint of architecture `model_name`.

    model_name: registry architecture (e.g. "original"); model_args: the arguments that rebuild it; params: number
    of parameters. metrics: held-out scores keyed "warping_error", "rand_error", "pixel_error" (others are listed
    as given), or None when not evaluated. training: what the training engineer knows, e.g. {"recipe":
    "recipes/isbi-original.toml", "steps": 10000, "hardware": "1x H100", "time_s": 5400, "held_out": "slices
    25-29"}; None if untrained. checkpoint_name: registry checkpoint name (e.g. "isbi-original") used in the usage
    snippet; repo_id: the Hub repo id used instead when there is no checkpoint name. held_out_scores: every
    held-out score (`unet_zoo.evaluation.evaluate.evaluate_model`'s dict, with "seconds_per_slice", "num_slices",
    "tta"), tabled beside Table 1; held_out_scores_without_tta: the same model without test-time augmentation, as
    a second column. stored_weights: what re-scoring the stored weights found (`unet_zoo.hub.publish.check_stored_weights`).
    notes: the recipe's notes; deviations: every departure from the paper, one item each. figures: {alt text:
    file name in the folder}, shown under the evaluation. targets: the recipe's held-out targets, met or missed
    (`unet_zoo.paper.target_results`), one line each; target_notes: what was measured or tried about them.
    segmentation: the defaults `unet_zoo.segment` uses with this checkpoint (`SegmentationParams` fields);
    segmentation_scores: `segmentation_scores` of those cells on the held-out data, {"tta": {...}, "no_tta": {...},
    "threshold_only": {"tta": {...}, "no_tta": {...}}} (any part may be missing). reference_scores: the paper's
    Table 1 scores the metrics are set beside, and reference_note: what the two columns measure (for ISBI 2012
    checkpoints, `unet_zoo.experiments.isbi2012.paper.TABLE1_CARD_FIELDS`); without them the card shows our
    scores alone.
    """

    model_name: str
    model_args: dict[str, Any]
    params: int
    metrics: dict[str, float] | None = None
    training: dict[str, Any] | None = None
    checkpoint_name: str | None = None
    repo_id: str | None = None
    license: str = "mit"
    datasets: list[str] | None = None
    tags: list[str] | None = None
    description: str | None = None
    limitations: list[str] | None = None
    held_out_scores: dict[str, Any] | None = None
    held_out_scores_without_tta: dict[str, Any] | None = None
    stored_weights: str | None = None
    notes: str | None = None
    deviations: list[str] | None = None
    figures: dict[str, str] | None = None
    targets: list[str] | None = None
    target_notes: str | None = None
    segmentation: dict[str, Any] | None = None
    segmentation_scores: dict[str, Any] | None = None
    reference_scores: dict[str, float] | None = None
    reference_note: str | None = None


CARD_DATA_KEYS: tuple[str, ...] = tuple(f.name for f in fields(CardInfo) if f.name not in ("model_name", "model_args", "params"))
"""What a caller may tell the card beyond the model itself (``save_pretrained(card_data=...)``)."""


def _model_section(info: CardInfo) -> str:
    description = info.description
    if description is None:
        try:
            description = get_entry(info.model_name).description
        except KeyError:
            description = "a U-Net"
    title = info.checkpoint_name or info.repo_id or f"unet_zoo {info.model_name}"
    args = ", ".join(f"{k}={v!r}" for k, v in info.model_args.items())
    return (
        f"# {title}\n\n"
        f"A U-Net of the unet_zoo architecture `{info.model_name}` ({description}). "
        f"It follows {PAPER} ([paper]({PAPER_URL})).\n\n"
        "## Model\n\n"
        f"- Architecture: `unet_zoo.create_model({info.model_name!r}, {args})`\n"
        f"- Parameters: {info.params:,}\n"
        f"- Input: (N, {info.model_args.get('in_channels', 1)}, H, W) float32 images scaled to [0, 1]; "
        f"output: (N, {info.model_args.get('num_classes', 2)}, H', W') per-pixel class logits.\n"
        "- Weights: safetensors only (`model.safetensors`, or shards listed in `model.safetensors.index.json`), "
        "never pickled; `config.json` names the registry "
        "builder and arguments that rebuild the network.\n"
    )


def _training_section(info: CardInfo) -> str:
    training = info.training
    if not training:
        return "## Training\n\nNo training information was recorded with these weights (they may be untrained).\n"
    lines = [f"- {label}: {_format_value(key, training[key])}" for key, label in TRAINING_FIELDS.items() if key in training]
    lines += [
        f"- {key.replace('_', ' ').capitalize()}: {_format_value(key, value)}"
        for key, value in training.items()
        if key not in TRAINING_FIELDS and key not in ("held_out_split", "deviations")
    ]
    return "## Training\n\n" + "\n".join(lines) + "\n"


def _evaluation_section(info: CardInfo) -> str:
    parts = ["## Evaluation\n"]
    reference = info.reference_scores
    if info.metrics and reference:
        parts.append(
            "Scores on held-out data, beside the paper's Table 1. The paper's numbers were computed by the "
            "ISBI 2012 organisers on the challenge's hidden test labels, so the columns are comparable only "
            "in order of magnitude.\n\n" + _metrics_table(info.metrics, reference)
        )
    elif info.metrics:
        parts.append("Scores on held-out data.\n\n" + _metrics_table(info.metrics, None))
    elif reference:
        parts.append(
            "Not evaluated. For reference, the paper's Table 1: "
            + ", ".join(f"{METRIC_NAMES.get(k, k)} {v:g}" for k, v in reference.items())
            + ".\n"
        )
    else:
        parts.append("Not evaluated.\n")
    if info.held_out_scores:
        parts.append("### All held-out scores\n")
        table = comparison_markdown(
            info.held_out_scores, info.held_out_scores_without_tta, reference=reference, note=info.reference_note
        )
        parts.append(table + "\n")
        hardware = (info.training or {}).get("hardware")
        parts.append(_inference_note(info.held_out_scores, info.held_out_scores_without_tta, hardware))
    parts += [f"![{alt}]({file_name})\n" for alt, file_name in (info.figures or {}).items()]
    return "\n".join(parts)


SEGMENTATION_ROWS = (
    ("rand_error", "Rand error (1 - V_rand)"),
    ("vrand", "V_rand"),
    ("vrand_split", "V_rand split part"),
    ("vrand_merge", "V_rand merge part"),
    ("vinfo", "V_info"),
)


def _segmentation_section(info: CardInfo) -> str | None:
    if not info.segmentation and not info.segmentation_scores:
        return None
    parts = ["## Segmentation\n"]
    if info.segmentation:
        settings = ", ".join(
            f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}" for key, value in info.segmentation.items()
        )
        parts.append(
            "`unet_zoo.segment` (and `unet-zoo segment`) turns this model's probabilities into labelled cells with a "
            f"seeded watershed and boundary agglomeration; its defaults for this checkpoint: {settings}.\n"
        )
    scores = info.segmentation_scores or {}
    columns = [key for key in ("tta", "no_tta") if scores.get(key)]
    if columns:
        names = {"tta": "with TTA", "no_tta": "without TTA"}
        thresholded = scores.get("threshold_only") or {}
        lines = ["| score of the held-out data | " + " | ".join(f"cells, {names[c]}" for c in columns) + " |"]
        lines.append("|---|" + "---:|" * len(columns))
        for key, label in SEGMENTATION_ROWS:
            lines.append(
                f"| {label} | " + " | ".join(f"{scores[c][key]:.4f}" if key in scores[c] else "-" for c in columns) + " |"
            )
        if any(thresholded.get(c) for c in columns):
            lines.append(
                "| Rand error of the thresholded probabilities | "
                + " | ".join(f"{thresholded[c]['rand_error']:.4f}" if thresholded.get(c) else "-" for c in columns)
                + " |"
            )
        parts.append("\n".join(lines) + "\n")
        parts.append(
            "The cells are a segmentation, scored with the organisers' definitions (foreground-restricted, pooled over the "
            "slices); the Evaluation table above scores the probability map thresholded at its best threshold, like the "
            "paper's Table 1. The paper's numbers come from a probability map scored by the organisers on the hidden test "
            "set, so either comparison is one of orders of magnitude. Command: "
            f"`unet-zoo evaluate {info.checkpoint_name or 'MODEL'} --segment --tta` (and without `--tta`).\n"
        )
    return "\n".join(parts)


def _stored_weights_section(info: CardInfo) -> str | None:
    return f"## Stored weights\n\n{info.stored_weights}\n" if info.stored_weights else None


def _targets_section(info: CardInfo) -> str | None:
    if not info.targets:
        return None
    text = (
        "## Targets\n\nSet before training, checked on the held-out slices with TTA:\n\n"
        + "\n".join(f"- {t}" for t in info.targets)
        + "\n"
    )
    return text + (f"\n{info.target_notes.strip()}\n" if info.target_notes else "")


def _notes_section(info: CardInfo) -> str | None:
    return f"## Recipe notes\n\n{info.notes.strip()}\n" if info.notes else None


def _deviations_section(info: CardInfo) -> str | None:
    deviations = info.deviations
    if deviations is None and isinstance((info.training or {}).get("deviations"), (list, tuple)):
        deviations = list((info.training or {})["deviations"])  # a config.json training record keeps them there
    if not deviations:
        return None
    return "## Deviations from the paper\n\n" + "\n".join(f"- {item}" for item in deviations) + "\n"


def _limitations_section(info: CardInfo) -> str:
    training = info.training or {}
    on_isbi = bool(info.training) and "isbi2012" in (info.datasets if info.datasets is not None else ["isbi2012"])
    count = re.search(r"(\d+) training slices", str(training.get("dataset", "")))
    slices = f"{count.group(1)} slices" if count else "at most 30 slices"
    default_limits = (
        [
            f"Trained on {slices} (512x512) of one serial-section TEM stack of the Drosophila ventral nerve cord; "
            "expect it to fail on other tissues, microscopes or resolutions without fine-tuning.",
            "Predicts membrane (class 0) vs cell interior (class 1); it does not separate touching cells into instances "
            "by itself.",
            "Held-out scores come from a split of the public training stack, not from the challenge's test server.",
        ]
        if on_isbi
        else [
            "No ISBI 2012 training recipe is recorded for these weights: check how they were trained before use.",
        ]
    )
    if info.model_args.get("padding", None) == 0:
        default_limits.append(
            "Valid convolutions: the output is smaller than the input; tile large images with overlap "
            "(mirror-padding the borders) as in the paper."
        )
    return "## Limitations\n\n" + "\n".join(f"- {item}" for item in (info.limitations or default_limits)) + "\n"


def _usage_section(info: CardInfo) -> str:
    load_name = info.checkpoint_name or info.repo_id or LOCAL_PLACEHOLDER
    return "## Usage\n\n" + _usage(info.model_name, info.model_args, load_name)


CITATION = (
    "## Citation\n\n"
    "```bibtex\n@inproceedings{ronneberger2015unet,\n  title={U-Net: Convolutional Networks for Biomedical "
    "Image Segmentation},\n  author={Ronneberger, Olaf and Fischer, Philipp and Brox, Thomas},\n"
    "  booktitle={MICCAI},\n  pages={234--241},\n  year={2015}\n}\n```\n"
)

SECTIONS: tuple[Callable[[CardInfo], str | None], ...] = (
    _model_section,
    _training_section,
    _evaluation_section,
    _segmentation_section,
    _stored_weights_section,
    _targets_section,
    _notes_section,
    _deviations_section,
    _limitations_section,
    _usage_section,
)
"""The card's Markdown sections in order; each returns its text or None to leave it out."""


def render_model_card(info: CardInfo) -> str:
    """The full README.md text: the YAML header (`card_metadata`) and the Markdown sections of `SECTIONS`."""
    data = card_metadata(
        info.model_name,
        metrics=info.metrics,
        checkpoint_name=info.checkpoint_name or info.repo_id,
        license=info.license,
        datasets=info.datasets,
        tags=info.tags,
        split=str((info.training or {}).get("held_out_split", "held-out")),
    )
    sections = [text for section in SECTIONS if (text := section(info)) is not None]
    body = "\n".join([*sections, CITATION])
    return f"---\n{data.to_yaml()}\n---\n\n{body}"


def model_card(text: str) -> ModelCard:
    """Parse card text into a `huggingface_hub.ModelCard` (raises ValueError on broken YAML)."""
    return ModelCard(text)


__all__ = ["CARD_DATA_KEYS", "METRIC_NAMES", "CardInfo", "card_metadata", "model_card", "render_model_card"]
