"""Held-out scores of the published checkpoints in float32 and in bf16, side by side (target: within 0.002).

    UNET_ZOO_DATA_DIR=path/to/isbi2012 python3 benchmarks/precision_accuracy.py --json precision-accuracy.json
    python3 benchmarks/precision_accuracy.py --checkpoints isbi-small --slices 24-25     # a quick look

Each checkpoint predicts the held-out ISBI 2012 slices (24-29 by default, no TTA) twice, with
``precision="fp32"`` and ``precision="bf16"`` (autocast with channels_last, what ``--precision bf16`` runs),
and both probability maps are scored with ``evaluate``'s scores. bf16 rounds the same way on every CPU
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


def compare(name: str, images: np.ndarray, labels: np.ndarray, device: str = "cpu") -> dict[str, Any]:
    """fp32 and bf16 scores of checkpoint `name` on (S, H, W) `images` / `labels`, their differences and whether
    each is within `TOLERANCES`; also the largest change of P(cell) at any pixel."""
    import unet_zoo
    from unet_zoo.evaluation.metrics import isbi_scores

    model = unet_zoo.from_pretrained(name, device=device)
    probs, seconds = {}, {}
    for precision in ("fp32", "bf16"):
        start = time.perf_counter()
        probs[precision] = unet_zoo.predict_stack(model, images, device=device, precision=precision)[:, 1]
        seconds[precision] = (time.perf_counter() - start) / len(images)
    scores = {p: isbi_scores(probs[p], labels) for p in probs}
    differences = {k: abs(float(scores["bf16"][k]) - float(scores["fp32"][k])) for k in TOLERANCES}
    return {
        "checkpoint": name,
        "fp32": {k: float(scores["fp32"][k]) for k in TOLERANCES},
        "bf16": {k: float(scores["bf16"][k]) for k in TOLERANCES},
        "differences": differences,
        "within_tolerance": {k: differences[k] <= TOLERANCES[k] for k in TOLERANCES},
        "max_probability_change": float(np.abs(probs["bf16"] - probs["fp32"]).max()),
        "seconds_per_slice": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", default=",".join(CHECKPOINTS), help="comma-separated checkpoint names")
    parser.add_argument("--slices", default="24-29", help="held-out ISBI slices, FIRST-LAST")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    from unet_zoo.benchmark.suite import environment
    from unet_zoo.data.isbi import load_isbi
    from unet_zoo.utils.runtime import cpu_bf16_hardware

    first, last = (int(v) for v in args.slices.split("-"))
    data = load_isbi(args.data_dir)
    images, labels = data.images[first : last + 1], data.labels[first : last + 1]
    results = [compare(name, images, labels) for name in args.checkpoints.split(",")]
    print(f"slices {first}-{last}, no TTA; bf16 hardware on this CPU: {cpu_bf16_hardware()}")
    print("| checkpoint | score | fp32 | bf16 | difference | tolerance |\n|---|---|---:|---:|---:|---:|")
    for r in results:
        for k, tol in TOLERANCES.items():
            mark = "" if r["within_tolerance"][k] else " (over)"
            fp32, bf16, diff = r["fp32"][k], r["bf16"][k], r["differences"][k]
            print(f"| {r['checkpoint']} | {k} | {fp32:.5f} | {bf16:.5f} | {diff:.2g}{mark} | {tol:g} |")
        print(f"| {r['checkpoint']} | largest change of P(cell) | | | {r['max_probability_change']:.3g} | |")
    if args.json:
        record = {"slices": [first, last], "tolerances": TOLERANCES, "results": results, "environment": environment("cpu")}
        args.json.write_text(json.dumps(record, indent=2, default=str))


if __name__ == "__main__":
    main()
