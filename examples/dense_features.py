# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""ToNNO for K outputs per slice: 3D maps of a few feature channels of a 2D timm encoder.

A network that returns ``(N, K)`` per batch of slices (here the pooled features of an encoder, ``num_classes=0``)
gives a ``(1, K, X, Y, Z)`` heatmap: channel ``k`` is where in the volume feature ``k`` of the slices comes from.
The paper proposes it (Section 5) for dense features of pretrained encoders; the reconstruction is linear, so
each channel is reconstructed alone, in passes of a few channels so that hundreds fit in memory.

The encoder has random weights unless ``--weights`` names a local checkpoint (timm or state dict; nothing is
downloaded). The volume is a NIfTI file or, by default, a positive case of the synthetic PET/CT phantom.

    python examples/dense_features.py --num_angles 100
    python examples/dense_features.py --network resnet18 --weights resnet18.pth --reconstruction iterative
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import timm
import torch
from heatmaps_figure import load_volume  # the sibling example's reader: NIfTI files or the synthetic phantom
from torch import nn

from monai_tonno import TomographicInferer
from monai_tonno.networks import load_pretrained_file
from monai_tonno.tomography.geometry import VolumeGeometry, fibonacci_directions, orthonormal_frames
from monai_tonno.tomography.radon import profile_offsets, profile_slices
from monai_tonno.visualize import diverging, grey, labelled_grid, orthogonal_views


class SelectedFeatures(nn.Module):
    """The encoder's pooled features ``(N, F)``, restricted to ``channels``: ``(N, K)``."""

    def __init__(self, encoder: nn.Module, channels: list[int]) -> None:
        super().__init__()
        self.encoder = encoder
        self.channels = channels

    def forward(self, slices: torch.Tensor) -> torch.Tensor:
        return self.encoder(slices)[:, self.channels]


def most_varying_features(encoder: nn.Module, volume: torch.Tensor, slice_size: int, count: int) -> list[int]:
    """The ``count`` features that vary most over slices cut along 8 directions (many of a random encoder are
    zero after its last ReLU, and their heatmaps would be blank)."""
    geometry = VolumeGeometry(tuple(volume.shape[1:]))
    frames = tuple(axis.float() for axis in orthonormal_frames(fibonacci_directions(8, True)))
    offsets, _ = profile_offsets(16)
    with torch.no_grad():
        slices = profile_slices(volume.float(), geometry, frames, offsets, 0, 8 * len(offsets), slice_size)
        spread = encoder(slices).std(dim=0)
    return [int(i) for i in spread.argsort(descending=True)[:count]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", nargs="*", default=[], help="NIfTI file(s), one per channel")
    parser.add_argument("--intensity_offset", type=float, nargs="+", default=[0.0, -1000.0])
    parser.add_argument("--intensity_scale", type=float, nargs="+", default=[10.0, 1000.0])
    parser.add_argument("--network", default="resnet10t", help="timm encoder")
    parser.add_argument("--weights", default=None, help="local checkpoint of the encoder (none: random weights)")
    parser.add_argument(
        "--channels", type=int, nargs="+", default=None, help="feature channels (default: the 4 that vary most)"
    )
    parser.add_argument("--slice_size", type=int, default=64)
    parser.add_argument("--num_angles", type=int, default=100)
    parser.add_argument("--num_slices", type=int, default=32)
    parser.add_argument("--reconstruction", choices=["filtered_backprojection", "iterative"], default=None)
    parser.add_argument("--seed", type=int, default=0, help="of the random encoder weights")
    parser.add_argument("--output", type=Path, default=Path("outputs/dense_features.png"))
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    volume = load_volume(args.image, args.intensity_scale, args.intensity_offset)
    encoder = timm.create_model(args.network, pretrained=False, num_classes=0, in_chans=volume.shape[0])
    if args.weights:
        load_pretrained_file(encoder, args.weights)
    encoder.eval()
    features = encoder.num_features
    if args.channels is None:
        args.channels = most_varying_features(encoder, volume, args.slice_size, count=4)
    bad = [c for c in args.channels if not 0 <= c < features]
    if bad:
        raise SystemExit(f"--channels {bad} are not features of {args.network}: it has {features}, 0..{features - 1}.")
    network = SelectedFeatures(encoder, args.channels).eval()
    inferer = TomographicInferer(
        num_angles=args.num_angles,
        num_slices=args.num_slices,
        slice_size=args.slice_size,
        progress=True,
        reconstruction=args.reconstruction or "filtered_backprojection",
    )
    start = time.perf_counter()
    with torch.no_grad():
        heatmaps = inferer(volume[None], network)[0].numpy()  # (K, X, Y, Z)
    print(f"{len(args.channels)} feature maps of shape {heatmaps.shape[1:]} in {time.perf_counter() - start:.1f} s")

    centre = [int(i) for i in np.unravel_index(int(volume[0].argmax()), volume.shape[1:])]
    rows = [
        (
            "input, channel 0",
            orthogonal_views(volume[0].numpy(), lambda v: grey(v, 0, float(volume[0].max())), centre=centre),
        )
    ]
    for channel, heatmap in zip(args.channels, heatmaps, strict=True):
        limit = float(np.abs(heatmap).max()) or 1.0
        rows.append(
            (f"feature {channel}", orthogonal_views(heatmap, lambda v, lim=limit: diverging(v, lim), centre=centre))
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    labelled_grid(rows, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
