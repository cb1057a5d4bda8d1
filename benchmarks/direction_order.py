# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""How uniform is every prefix of an ordering of directions? (issue 23, item 1: the ground of a ToNNO that stops
when its heatmap has converged).

For each prefix length ``l`` of ``L`` hemisphere directions: the largest angular gap (the covering radius: the
largest angle from a probe line to its nearest direction, over 20,000 probe lines) and the error of filtered
backprojection fed the exact Radon transform of Gaussian blobs at those directions (the closed form of DESIGN.md,
so only the direction set errs), each against the Fibonacci lattice of ``l`` directions, the best set of that size
measured here. Orders compared: the lattice's own (today's), a greedy farthest-point order of the ``L``-lattice
(every prefix fills the largest gap) and the R2 low-discrepancy sequence (Roberts 2018) mapped onto the hemisphere
by equal area. Example (3 minutes on 2 cores while a training shared them)::

    python benchmarks/direction_order.py --num_angles 1000 --json outputs/direction_order.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import gaussian_blobs, gaussian_blobs_radon, relative_error  # noqa: E402

from monai_tonno.tomography.geometry import VolumeGeometry, fibonacci_directions  # noqa: E402
from monai_tonno.tomography.radon import filtered_backprojection, profile_offsets  # noqa: E402

BLOBS = [((0.2, -0.1, 0.3), 0.18, 1.0), ((-0.3, 0.25, -0.1), 0.22, 0.6), ((0.05, 0.3, -0.35), 0.08, 0.8)]
PLASTIC = 1.324717957244746  # the R2 sequence's generalised golden ratio in two dimensions


def line_angles(directions: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """Angles between lines (``n`` and ``-n`` are one line, as on the hemisphere)."""
    return torch.arccos((directions @ others.T).abs().clamp(max=1.0))


def farthest_point_order(directions: torch.Tensor) -> torch.Tensor:
    """Greedy order: each next direction is the one farthest (as a line) from those already taken."""
    order = torch.empty(len(directions), dtype=torch.long)
    nearest = torch.full((len(directions),), math.inf, dtype=directions.dtype)
    current = 0
    for k in range(len(directions)):
        order[k] = current
        nearest = torch.minimum(nearest, line_angles(directions[current : current + 1], directions)[0])
        nearest[current] = -1.0
        current = int(torch.argmax(nearest))
    return order


def r2_hemisphere(num: int) -> torch.Tensor:
    """The R2 sequence ``(frac(1/2 + k/g), frac(1/2 + k/g^2))`` as ``(y, theta / 2 pi)`` on the hemisphere."""
    k = torch.arange(num, dtype=torch.float64)
    y = (0.5 + k / PLASTIC) % 1.0
    theta = 2 * math.pi * ((0.5 + k / PLASTIC**2) % 1.0)
    r = torch.sqrt(1 - y * y)
    return torch.stack([r * torch.cos(theta), y, r * torch.sin(theta)], dim=-1)


def voronoi_weights(directions: torch.Tensor) -> torch.Tensor:
    """Each hemisphere direction's share of the sphere: its spherical Voronoi cell plus that of ``-n``."""
    from scipy.spatial import SphericalVoronoi

    both = torch.cat([directions, -directions]).double().numpy()
    areas = torch.as_tensor(SphericalVoronoi(both, 1.0, [0.0, 0.0, 0.0]).calculate_areas())
    weights = areas[: len(directions)] + areas[len(directions) :]
    return weights / weights.sum()


def nested_lattices(error, volume: torch.Tensor, start: int, levels: int) -> list[dict]:
    """Lattices of ``start``, ``2 start``, ... : their union at equal and at Voronoi weights, and mixes of the
    levels' own heatmaps weighted by ``L^p``, against the last level alone and the lattice of the union's size."""
    sets, heatmaps, rows = [], [], []
    for level in range(levels):
        size = start * 2**level
        sets.append(fibonacci_directions(size, hemisphere=True))
        union = torch.cat(sets)
        heatmaps.append(error(sets[-1], reconstruct=True))
        sizes = torch.tensor([len(d) for d in sets], dtype=torch.float64)
        mixes = {
            f"mix L^{p}": relative_error(sum(w * h for w, h in zip(sizes**p / (sizes**p).sum(), heatmaps, strict=True)),
                                         volume)
            for p in (1, 2, 3)
        }  # fmt: skip
        rows.append({
            "levels": f"{start}..{size}", "directions": len(union), "last level": error(sets[-1]),
            "union, equal weights": error(union), "union, Voronoi weights": error(union, voronoi_weights(union)),
            **mixes, "lattice of the union's size": error(fibonacci_directions(len(union), True)),
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_angles", type=int, default=1000, help="L, the full set whose prefixes are measured")
    parser.add_argument("--num_slices", type=int, default=64)
    parser.add_argument("--size", type=int, default=32, help="voxels per side of the blob volume")
    parser.add_argument("--nested", action="store_true", help="also measure unions of nested lattices")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    probes = fibonacci_directions(20000, hemisphere=True)
    geometry = VolumeGeometry((args.size,) * 3)
    volume = gaussian_blobs(geometry, BLOBS).reshape(-1)
    offsets, _ = profile_offsets(args.num_slices, torch.float64)
    points = geometry.voxel_points(torch.float64)

    def gap(directions: torch.Tensor) -> float:
        return math.degrees(float(line_angles(probes, directions).min(dim=1).values.max()))

    def error(directions: torch.Tensor, weights: torch.Tensor | None = None, reconstruct: bool = False):
        """FBP's relative error (or, ``reconstruct``, its heatmap); ``weights`` (summing to 1) replace ``1 / L``."""
        profiles = gaussian_blobs_radon(BLOBS, directions, offsets)
        if weights is not None:
            profiles = profiles * (weights * len(directions))[:, None]
        heatmap = filtered_backprojection(profiles, directions, points)
        return heatmap if reconstruct else relative_error(heatmap, volume)

    lattice = fibonacci_directions(args.num_angles, hemisphere=True)
    orders = {
        "lattice order": lattice,
        "farthest point": lattice[farthest_point_order(lattice)],
        "R2 sequence": r2_hemisphere(args.num_angles),
    }
    lengths = sorted({min(args.num_angles, 2**k) for k in range(4, 20)} | {args.num_angles})
    rows = []
    print(f"| prefix l | Fibonacci lattice of l: gap, FBP error | {' | '.join(orders)} |")
    print("|---|---|" + "---|" * len(orders))
    for length in lengths:
        best = fibonacci_directions(length, hemisphere=True)
        row = {"l": length, "lattice_of_l": {"gap_deg": gap(best), "fbp_error": error(best)}}
        row |= {name: {"gap_deg": gap(d[:length]), "fbp_error": error(d[:length])} for name, d in orders.items()}
        rows.append(row)
        cells = [f"{row[name]['gap_deg']:.1f} deg, {row[name]['fbp_error']:.3f}" for name in orders]
        print(f"| {length} | {row['lattice_of_l']['gap_deg']:.1f} deg, {row['lattice_of_l']['fbp_error']:.3f} | "
              + " | ".join(cells) + " |")  # fmt: skip
    nested = []
    if args.nested:
        nested = nested_lattices(error, volume, 32, 5)
        print("\n| " + " | ".join(nested[0]) + " |\n" + "|---" * len(nested[0]) + "|")
        for row in nested:
            print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"num_angles": args.num_angles, "rows": rows, "nested": nested}, indent=1))


if __name__ == "__main__":
    main()
