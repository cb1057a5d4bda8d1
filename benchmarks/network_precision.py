# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""How fast the slice network runs, and what each faster arithmetic costs ToNNO's heatmap.

Part 1, throughput: slices per second of the network alone for each memory format (``channels_last`` or not),
batch size, arithmetic (strict float32; TF32 on a GPU; bfloat16 and float16 autocast), with and without the
frozen batch normalisation folded into the convolutions, and under ``torch.compile``.

Part 2, accuracy: one ToNNO reconstruction of the same random volume per arithmetic, its relative L2
difference from the plain network's in strict float32. ToNNO's second difference along each profile divides
by the square of the slice spacing, which turns rounding of the logits into noise in the heatmap.

    python benchmarks/network_precision.py --device cuda --json out.json
    python benchmarks/network_precision.py --device cpu --size 64 --slice_size 64 --num_angles 50 --skip_compile
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import torch

from monai_tonno import TomographicInferer
from monai_tonno.networks import create_slice_classifier, fold_batch_norm

ARITHMETIC = {  # name: (autocast dtype or None, TF32 allowed)
    "float32": (None, False),
    "tf32": (None, True),
    "bfloat16": (torch.bfloat16, True),
    "float16": (torch.float16, True),
}


@contextlib.contextmanager
def arithmetic(device: torch.device, name: str):
    dtype, tf32 = ARITHMETIC[name]
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def slices_per_second(network, device: torch.device, batch: int, size: int, name: str, slices: int) -> float:
    x = torch.rand(batch, 1, size, size, device=device)
    calls = max(3, slices // batch)
    with torch.no_grad(), arithmetic(device, name):
        for _ in range(2):
            network(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(calls):
            network(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return batch * calls / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--network", default="resnet10t")
    parser.add_argument("--size", type=int, default=128, help="volume size for the accuracy part")
    parser.add_argument("--slice_size", type=int, default=224)
    parser.add_argument("--num_slices", type=int, default=100)
    parser.add_argument("--num_angles", type=int, default=2000)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--timed_slices", type=int, default=4096, help="slices per throughput measurement")
    parser.add_argument("--skip_compile", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    names = list(ARITHMETIC) if device.type == "cuda" else ["float32", "bfloat16"]
    torch.manual_seed(0)
    plain = create_slice_classifier(args.network, 1, "frozen_batch").to(device).eval()
    results: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", **vars(args)}

    rows = []
    for channels_last in (True, False):
        for folded in (False, True):
            network = fold_batch_norm(plain) if folded else plain
            network = network.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
            for batch in args.batches:
                row = {"channels_last": channels_last, "folded": folded, "batch": batch, "compiled": False}
                for name in names:
                    row[name] = slices_per_second(network, device, batch, args.slice_size, name, args.timed_slices)
                rows.append(row)
                print(row, flush=True)
    if not args.skip_compile:
        network = torch.compile(fold_batch_norm(plain).to(memory_format=torch.channels_last))
        batch = max(args.batches[:2])
        row = {"channels_last": True, "folded": True, "batch": batch, "compiled": True}
        for name in names:
            row[name] = slices_per_second(network, device, batch, args.slice_size, name, args.timed_slices)
        rows.append(row)
        print(row, flush=True)
    results["throughput"] = rows

    volume = torch.rand(1, 1, args.size, args.size, args.size, device=device)
    inferer = TomographicInferer(args.num_angles, args.num_slices, args.slice_size, sw_batch_size=256)
    folded = fold_batch_norm(plain).to(memory_format=torch.channels_last)
    with torch.no_grad():
        with arithmetic(device, "float32"):
            reference = inferer(volume, plain)
        accuracy = {}
        for name in names:
            with arithmetic(device, name):
                heatmap = inferer(volume, folded)
            accuracy[name] = float((heatmap - reference).norm() / reference.norm())
            print(f"ToNNO, folded network, {name}: relative difference {accuracy[name]:.2e}", flush=True)
    results["tonno_error_vs_float32"] = accuracy

    header = ["channels_last", "folded", "compiled", "batch", *names]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(f"{row[k]:.0f}" if isinstance(row[k], float) else str(row[k]) for k in header) + " |")
    print("| ToNNO difference from strict float32 | | | | " + " | ".join(f"{accuracy[n]:.1e}" for n in names) + " |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
