# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Where the time of a tomographic reconstruction goes, against the network's own floor.

For one volume size, L, M, slice size and network this measures:

- the *floor*: the network alone on pre-cut slices, as many batches as the reconstruction needs
  (forward only for ToNNO; forward and backward for the CAM modes);
- the full ``TomographicInferer`` call for each mode, also against the network's (or the CAM's) own time
  within that call: drift-free, unlike the separate floor;
- its parts: cutting slices, filtering, and backprojection (Fourier, the default; linear interpolation; the
  CAM modes' stacks), each timed alone on the same work and in the same chunks as the inferer;
- a *naive reference* of the backprojection, the paper's straightforward form: per direction one full-volume
  ``grid_sample`` of the filtered profile;
- the peak memory: on a GPU the CUDA allocator's, of the parts alone and of the floor and inferer runs; on a
  CPU the process's peak RSS (imported libraries included), which only grows.

Mode ``tonno_linear`` is ToNNO with ``backprojection="linear"``, the path before the Fourier backprojection;
mode ``tonno_iterative`` is ToNNO with ``reconstruction="iterative"`` (its defaults), ``tonno_auto`` with
``UntilConverged(32, L)`` (``num_angles="auto"`` capped at the config's L).
The network's frozen batch normalisation is folded into its convolutions (``--no-fold_norm`` for the plain
network); with any faster arithmetic (folding, ``--compile``, ``--autocast``, TF32 on a GPU) ToNNO's heatmap is
also compared with the plain network's in strict float32 (``--skip_accuracy`` to leave that out).

    python benchmarks/speed.py --config cpu-small
    python benchmarks/speed.py --config cpu-small --modes tonno --angles 4000   # peak memory at large L
    python benchmarks/speed.py --config paper --device cuda --sw_batch_size 256 --compile
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import resource
import time

import torch
import torch.nn.functional as F

from monai_tonno import TomographicInferer
from monai_tonno.inferers import UntilConverged
from monai_tonno.networks import create_slice_classifier, fold_batch_norm
from monai_tonno.tomography.fourier_backprojection import FourierBackprojection
from monai_tonno.tomography.geometry import VolumeGeometry, fibonacci_directions, orthonormal_frames
from monai_tonno.tomography.radon import (
    backproject_stacks,
    filtered_backprojection,
    profile_offsets,
    profile_slices,
    second_difference,
)
from monai_tonno.tomography.reconstruction import FilteredBackprojection
from monai_tonno.visualize import SliceCAM

RECONSTRUCTION_OF_MODE = {
    "tonno_linear": functools.partial(FilteredBackprojection, backprojection="linear"),
    "tonno_iterative": "iterative",
}
CONFIGS = {
    "cpu-small": {"size": 64, "slice_size": 64, "num_slices": 50, "num_angles": 500},
    "paper": {"size": 128, "slice_size": 224, "num_slices": 100, "num_angles": 2000},
}


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function, device: torch.device, warm_up: bool = False) -> float:
    """Seconds of one call; after one untimed call if ``warm_up`` (kernel loading, FFT plans on a GPU)."""
    if warm_up:
        function()
    synchronise(device)
    start = time.perf_counter()
    function()
    synchronise(device)
    return time.perf_counter() - start


@contextlib.contextmanager
def strict_float32():
    """No TF32 in convolutions and matrix products (PyTorch's default on a GPU uses it for convolutions)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def naive_backprojection(profiles: torch.Tensor, directions: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Per direction, one grid_sample of the filtered profile over every voxel (the paper's form)."""
    result = points.new_zeros(points.shape[0])
    for profile, direction in zip(profiles, directions, strict=True):
        position = points @ direction
        grid = torch.stack([position, torch.zeros_like(position)], dim=-1)[None, None]
        result += F.grid_sample(profile.reshape(1, 1, 1, -1), grid, align_corners=True).reshape(-1)
    return result


class Clocked:
    """A function of the slices (the network; the CAM of the CAM modes) with the time of its calls summed.

    That is the floor measured inside the inferer's own run, on the slices it cut: the separate floor runs a
    minute apart from the inferer, and this machine's speed drifts between minutes, while the function's time
    within the same run does not drift against the rest. On a GPU CUDA events time the calls without
    synchronising.
    """

    def __init__(self, function, device: torch.device) -> None:
        self.function, self.device = function, device
        self.seconds = 0.0
        self.events: list = []

    def __call__(self, slices: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            output = self.function(slices)
            stop.record()
            self.events.append((start, stop))
            return output
        start = time.perf_counter()
        output = self.function(slices)
        self.seconds += time.perf_counter() - start
        return output

    def total_seconds(self) -> float:
        synchronise(self.device)
        return self.seconds + sum(start.elapsed_time(stop) for start, stop in self.events) / 1000


def fourier_backprojection(
    profiles: torch.Tensor, directions: torch.Tensor, geometry: VolumeGeometry, chunk: int
) -> torch.Tensor:
    """As the inferer does it: filtered profiles added ``chunk`` directions at a time, one FFT at the end."""
    _, step = profile_offsets(profiles.shape[1] - 2)
    fourier = FourierBackprojection(geometry, profiles.shape[1] - 2, device=profiles.device)
    for start in range(0, len(profiles), chunk):
        fourier.add(second_difference(profiles[start : start + chunk], step), directions[start : start + chunk])
    return fourier.volume()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="cpu-small")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--network", default="resnet10t")
    parser.add_argument("--sw_batch_size", type=int, default=64)
    parser.add_argument(
        "--modes", nargs="+", default=["tonno", "tonno_linear", "averaged_cam", "tomographic_cam"],
        choices=["tonno", "tonno_linear", "tonno_iterative", "tonno_auto", "averaged_cam", "tomographic_cam"],
    )  # fmt: skip
    parser.add_argument("--angles", type=int, default=None, help="override L (e.g. to time a share of the work)")
    parser.add_argument("--hemisphere", action="store_true", help="directions on a hemisphere")
    parser.add_argument("--channels_last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--autocast", choices=["none", "bfloat16", "float16"], default="none")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--fold_norm", action=argparse.BooleanOptionalAction, default=True,
                        help="fold the frozen batch normalisation into the convolutions")  # fmt: skip
    parser.add_argument("--skip_naive", action="store_true", help="skip the slow naive reference")
    parser.add_argument("--skip_accuracy", action="store_true", help="skip the comparison with strict float32")
    parser.add_argument("--repeats", type=int, default=1, help="floor and totals alternate; minimum kept")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    config = dict(CONFIGS[args.config])
    if args.angles:
        config["num_angles"] = args.angles
    device = torch.device(args.device)
    network = create_slice_classifier(args.network, 1, "frozen_batch", channels_last=args.channels_last)
    network = plain_network = network.to(device).eval()
    if args.fold_norm:
        network = fold_batch_norm(network)
    cam_network = network
    if args.compile:
        network = torch.compile(network)
    precision = (
        torch.autocast(device.type, dtype=getattr(torch, args.autocast))
        if args.autocast != "none"
        else contextlib.nullcontext()
    )
    volume = torch.rand(1, 1, *(config["size"],) * 3, device=device)
    geometry = VolumeGeometry((config["size"],) * 3)
    per_direction = config["num_slices"] + 2
    total = config["num_angles"] * per_direction
    batches = math.ceil(total / args.sw_batch_size)
    results: dict = {"config": args.config, **config, "device": str(device), "slices": total}
    results.update(
        hemisphere=args.hemisphere,
        channels_last=args.channels_last,
        autocast=args.autocast,
        compile=args.compile,
        fold_norm=args.fold_norm,
    )
    if device.type == "cuda":
        results["device_name"] = torch.cuda.get_device_name(device)

    batch = torch.rand(args.sw_batch_size, 1, config["slice_size"], config["slice_size"], device=device)
    cam = SliceCAM(cam_network, "layer2")  # CAM hooks need the module tree, which torch.compile wraps

    def floor_forward() -> None:
        with torch.no_grad(), precision:
            for _ in range(batches):
                network(batch)

    def floor_forward_backward() -> None:
        with precision:
            for _ in range(batches):
                cam(batch)

    with torch.no_grad(), precision:
        network(batch)  # warm-up (and compilation)
    with precision:
        cam(batch)

    directions = fibonacci_directions(config["num_angles"], args.hemisphere)
    frames = tuple(a.to(device=device, dtype=torch.float32) for a in orthonormal_frames(directions))
    offsets, _ = profile_offsets(config["num_slices"], device=device)

    def cut_all() -> None:
        for start in range(0, total, args.sw_batch_size):
            stop = min(start + args.sw_batch_size, total)
            profile_slices(volume[0], geometry, frames, offsets, start, stop, config["slice_size"])

    warm = device.type == "cuda"  # parts alone: after a first untimed call on a GPU
    results["slicing_s"] = timed(cut_all, device, warm)
    points = geometry.voxel_points(device=device)
    profiles = torch.rand(config["num_angles"], per_direction, device=device)
    _, step = profile_offsets(config["num_slices"])
    results["filtering_s"] = timed(lambda: second_difference(profiles, step), device, warm)
    results["backprojection_s"] = timed(lambda: fourier_backprojection(profiles, frames[0], geometry, 8), device, warm)
    results["linear_backprojection_s"] = timed(
        lambda: filtered_backprojection(profiles, frames[0], points), device, warm
    )
    if not args.skip_naive:
        filtered = torch.rand(config["num_angles"], config["num_slices"], device=device)
        results["naive_backprojection_s"] = timed(
            lambda: naive_backprojection(filtered, frames[0], points), device, warm
        )
        results["naive_over_ours"] = results["naive_backprojection_s"] / results["backprojection_s"]
    if any(not mode.startswith("tonno") for mode in args.modes):
        layer2 = config["slice_size"] // 8
        stacks = torch.rand(config["num_angles"], config["num_slices"], layer2, layer2, device=device)
        results["stack_backprojection_s"] = timed(
            lambda: backproject_stacks(stacks, frames, points, config["slice_size"]), device, warm
        )

    if args.compile and any(mode.startswith("tonno") for mode in args.modes):
        # compilation for the inferer's batch shapes (its last batch is smaller): once per process, not timed
        inferer = TomographicInferer(config["num_angles"], config["num_slices"], config["slice_size"],
                                     sw_batch_size=args.sw_batch_size)  # fmt: skip
        with torch.no_grad(), precision:
            results["compile_warm_up_s"] = timed(lambda: inferer(volume, network), device)

    results["parts_peak_memory_mb"] = peak_memory_mb(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)  # from here: the inferer's own peak (on a CPU, RSS keeps its peak)

    # each mode right after its floor, the minimum over repeats: the machine's speed drifts between minutes
    runs: dict[str, list[float]] = {}
    in_run: dict[str, list[float]] = {mode: [] for mode in args.modes}  # total / network's (CAM's) time in it
    for _ in range(args.repeats):
        for floor_name, floor, group in (("floor_forward", floor_forward, ("tonno", "tonno_linear", "tonno_iterative",
                                                                          "tonno_auto")),
                                         ("floor_forward_backward", floor_forward_backward,
                                          ("averaged_cam", "tomographic_cam"))):  # fmt: skip
            modes = [mode for mode in args.modes if mode in group]
            if not modes:
                continue
            runs.setdefault(floor_name, []).append(timed(floor, device))
            for mode in modes:
                # the network (ToNNO) or the floor's CAM (forward + backward + maps, what the inferer's default
                # ``SliceCAM(network, "layer2")`` does), timed within the run
                clock = Clocked(network if mode.startswith("tonno") else cam, device)
                # "auto": levels 32, 64, ... up to L; its ratio to the network's time in the same run counts the
                # extra reconstruction and comparison of every level it scored
                num_angles = UntilConverged(32, config["num_angles"]) if mode == "tonno_auto" else config["num_angles"]
                inferer = TomographicInferer(
                    num_angles, config["num_slices"], config["slice_size"], hemisphere=args.hemisphere,
                    mode=mode.split("_")[0] if mode.startswith("tonno") else mode,
                    cam_method=lambda _, slices, clock=clock: clock(slices), sw_batch_size=args.sw_batch_size,
                    reconstruction=RECONSTRUCTION_OF_MODE.get(mode, "filtered_backprojection"),
                )  # fmt: skip
                scored = clock if mode.startswith("tonno") else cam_network
                with torch.no_grad(), precision:
                    runs.setdefault(mode, []).append(
                        timed(lambda inferer=inferer, scored=scored: inferer(volume, scored), device)
                    )
                in_run[mode].append(runs[mode][-1] / clock.total_seconds())
    results["runs_s"] = runs
    results["over_network_in_run"] = in_run
    for name, seconds in runs.items():
        results[f"{name}_s"] = min(seconds)
    for mode in args.modes:
        floor = results["floor_forward_s"] if mode.startswith("tonno") else results["floor_forward_backward_s"]
        results[f"{mode}_over_floor"] = results[f"{mode}_s"] / floor
        results[f"{mode}_over_network_in_run"] = min(in_run[mode])
    results["peak_memory_mb"] = peak_memory_mb(device)
    fast_arithmetic = args.autocast != "none" or args.compile or args.fold_norm or device.type == "cuda"
    if "tonno" in args.modes and fast_arithmetic and not args.skip_accuracy:
        # what the faster network costs in accuracy (ToNNO's second difference amplifies logit rounding),
        # against the plain network in strict float32 (no TF32 on a GPU)
        inferer = TomographicInferer(config["num_angles"], config["num_slices"], config["slice_size"],
                                     hemisphere=args.hemisphere, sw_batch_size=args.sw_batch_size)  # fmt: skip
        with torch.no_grad():
            with precision:
                fast = inferer(volume, network)
            with strict_float32():
                exact = inferer(volume, plain_network)
        results["tonno_error_vs_float32"] = float((fast - exact).norm() / exact.norm())

    print(f"| {args.config} on {device}, L = {config['num_angles']} ({total} slices) | seconds | ratio |")
    print("|---|---|---|")
    parts = ("floor_forward", "floor_forward_backward", "slicing", "filtering", "backprojection",
             "linear_backprojection", "naive_backprojection", "stack_backprojection")  # fmt: skip
    for key in parts:
        if f"{key}_s" in results:
            print(f"| {key} | {results[f'{key}_s']:.2f} | |")
    for mode in args.modes:
        print(f"| {mode} total | {results[f'{mode}_s']:.2f} | {results[f'{mode}_over_floor']:.3f} x floor |")
        ratio = results[f"{mode}_over_network_in_run"]
        print(f"| {mode} total / its network's (CAM's) time in the same run | | {ratio:.3f} |")
    if "naive_over_ours" in results:
        print(f"| naive / Fourier backprojection | | {results['naive_over_ours']:.1f} |")
    print(f"| peak memory MB, parts alone | {results['parts_peak_memory_mb']:.0f} | |")
    print(f"| peak memory MB, floor and inferer | {results['peak_memory_mb']:.0f} | |")
    if "tonno_error_vs_float32" in results:
        print(f"| ToNNO heatmap error vs plain network, strict float32 | | {results['tonno_error_vs_float32']:.2e} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
