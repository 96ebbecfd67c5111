"""Held-out scores of the published checkpoints in float32 and on other inference paths (target: within 0.002).

    UNET_ZOO_DATA_DIR=path/to/isbi2012 python3 studies/precision_accuracy.py --json precision-accuracy.json
    python3 studies/precision_accuracy.py --checkpoints isbi-small --slices 24-25     # a quick look
    python3 studies/precision_accuracy.py --paths auto,torch-bf16,openvino-bf16      # the paths to compare

Each checkpoint predicts the held-out ISBI 2012 slices (24-29 by default, no TTA) with torch float32 (the
reference) and with each path of ``--paths`` (default: ``torch-bf16`` and ``auto``, the path `auto` picks on this
machine: `unet_zoo.exporters.paths.choose_inference_path`), and every probability map is scored with
``evaluate``'s scores. bf16 rounds the same way on every CPU
that computes it (AVX-512-BF16, AMX) or a GPU; only the accumulation order differs between them. On a CPU
without bf16 instructions PyTorch emulates it: the numbers hold, the time does not.
Tolerances: V_rand (thinned), Rand error and pixel error within 0.002 of float32, warping error within 5e-5.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

TOLERANCES = {"vrand_thinned": 0.002, "rand_error": 0.002, "pixel_error": 0.002, "warping_error": 5e-5}
CHECKPOINTS = ("isbi-small", "isbi-padded", "isbi-original")


def compare(name: str, images: np.ndarray, labels: np.ndarray, paths: list[str], device: str = "cpu") -> dict[str, Any]:
    """torch float32 scores of checkpoint `name` on (S, H, W) `images` / `labels` and those of each inference path
    of `paths` ("auto": what auto picks here), their differences, whether each is within `TOLERANCES`, and the
    largest change of P(cell) at any pixel."""
    import unet_zoo
    from unet_zoo.evaluation.metrics import isbi_scores
    from unet_zoo.exporters import paths as inference_paths
    from unet_zoo.runtime import measured

    model = unet_zoo.from_pretrained(name, device=device)
    probs, seconds, ran = {}, {}, {}
    for path in ["torch-fp32", *paths]:
        if path == "auto":
            choice = inference_paths.choose_inference_path(model, device)
            forward, precision, ran[path] = choice.forward, choice.precision, choice.path
        else:
            forward, precision, ran[path] = (
                inference_paths.inference_path_forward(model, path),
                measured.PATH_PRECISION[path],
                path,
            )
        start = time.perf_counter()
        probs[path] = unet_zoo.predict_stack(model, images, device=device, precision=precision, forward=forward)[:, 1]
        seconds[path] = (time.perf_counter() - start) / len(images)
    scores = {p: isbi_scores(probs[p], labels) for p in probs}
    result: dict[str, Any] = {"checkpoint": name, "ran": ran, "seconds_per_slice": seconds}
    result["scores"] = {p: {k: float(scores[p][k]) for k in TOLERANCES} for p in probs}
    result["differences"] = {
        p: {k: abs(result["scores"][p][k] - result["scores"]["torch-fp32"][k]) for k in TOLERANCES} for p in paths
    }
    result["within_tolerance"] = {p: {k: result["differences"][p][k] <= TOLERANCES[k] for k in TOLERANCES} for p in paths}
    result["max_probability_change"] = {p: float(np.abs(probs[p] - probs["torch-fp32"]).max()) for p in paths}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", default=",".join(CHECKPOINTS), help="comma-separated checkpoint names")
    parser.add_argument("--slices", default="24-29", help="held-out ISBI slices, FIRST-LAST")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--paths", default="torch-bf16,auto", help="inference paths to compare with torch-fp32")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    from unet_zoo.benchmark.suite import environment
    from unet_zoo.experiments.isbi2012.data import load_isbi
    from unet_zoo.runtime.settings import cpu_bf16_hardware

    first, last = (int(v) for v in args.slices.split("-"))
    paths = [p for p in args.paths.split(",") if p]
    data = load_isbi(args.data_dir)
    images, labels = data.images[first : last + 1], data.labels[first : last + 1]
    results = [compare(name, images, labels, paths) for name in args.checkpoints.split(",")]
    print(f"slices {first}-{last}, no TTA; bf16 hardware on this CPU: {cpu_bf16_hardware()}")
    print("| checkpoint | path | score | torch-fp32 | path | difference | tolerance |\n|---|---|---|---:|---:|---:|---:|")
    for r in results:
        for p in paths:
            shown = f"{p} ({r['ran'][p]})" if p == "auto" else p
            for k, tol in TOLERANCES.items():
                mark = "" if r["within_tolerance"][p][k] else " (over)"
                ref, value, diff = r["scores"]["torch-fp32"][k], r["scores"][p][k], r["differences"][p][k]
                print(f"| {r['checkpoint']} | {shown} | {k} | {ref:.5f} | {value:.5f} | {diff:.2g}{mark} | {tol:g} |")
            print(f"| {r['checkpoint']} | {shown} | largest change of P(cell) | | | {r['max_probability_change'][p]:.3g} | |")
        print(
            f"| {r['checkpoint']} | seconds per slice | "
            + ", ".join(f"{p} {s:.2f}" for p, s in r["seconds_per_slice"].items())
            + " | | | | |"
        )
    if args.json:
        record = {"slices": [first, last], "tolerances": TOLERANCES, "results": results, "environment": environment("cpu")}
        args.json.write_text(json.dumps(record, indent=2, default=str))


if __name__ == "__main__":
    main()
