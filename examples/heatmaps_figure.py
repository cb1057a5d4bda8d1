# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""One PNG with ToNNO, slice-wise LayerCAM, Averaged LayerCAM and Tomographic LayerCAM heatmaps of a volume.

Each heatmap is shown over three orthogonal views, blue negative, red positive, as in the paper's Figure 6.
The volume is a NIfTI file (``--image``, several files for several channels) or, by default, a positive case
of the synthetic PET/CT phantom; the classifier is a checkpoint written by the training bundle (``--checkpoint``)
or a freshly initialised one.

    python examples/heatmaps_figure.py --checkpoint outputs/autopet/models/model.pt --num_angles 100
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from monai.transforms import LoadImage

from monai_tonno import TomographicInferer
from monai_tonno.data import SyntheticPETCTConfig, synthetic_petct_case
from monai_tonno.inferers import SliceCAMInferer
from monai_tonno.networks import create_slice_classifier, load_trained_classifier
from monai_tonno.visualize import diverging, grey, labelled_grid, orthogonal_views


def load_volume(paths: list[str], scale: list[float], offset: list[float]) -> torch.Tensor:
    if paths:
        image = LoadImage(image_only=True, ensure_channel_first=True)(paths if len(paths) > 1 else paths[0])
        volume = image.as_tensor().float()
    else:
        suv, hu, _ = synthetic_petct_case(np.random.default_rng(7), SyntheticPETCTConfig(), positive=True)
        volume = torch.stack([torch.as_tensor(suv), torch.as_tensor(hu)])
    channels = volume.shape[0]
    shift = torch.tensor(offset[:channels]).reshape(-1, 1, 1, 1)
    return (volume - shift) / torch.tensor(scale[:channels]).reshape(-1, 1, 1, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", nargs="*", default=[], help="NIfTI file(s), one per channel")
    parser.add_argument("--intensity_offset", type=float, nargs="+", default=[0.0, -1000.0])
    parser.add_argument("--intensity_scale", type=float, nargs="+", default=[10.0, 1000.0])
    parser.add_argument("--checkpoint", default=None, help="model.pt of the training bundle (network.json beside it)")
    parser.add_argument("--network_name", default="resnet10t", help="the untrained network without --checkpoint")
    parser.add_argument("--norm", default="group", help="the untrained network's normalisation")
    parser.add_argument("--layer", default="layer2", help="LayerCAM layer")
    parser.add_argument("--slice_size", type=int, default=64)
    parser.add_argument("--num_angles", type=int, default=100)
    parser.add_argument("--num_slices", type=int, default=32)
    parser.add_argument("--output", type=Path, default=Path("outputs/heatmaps.png"))
    args = parser.parse_args()

    volume = load_volume(args.image, args.intensity_scale, args.intensity_offset)
    if args.checkpoint:  # built as training described it in network.json
        network = load_trained_classifier(args.checkpoint)
    else:
        network = create_slice_classifier(args.network_name, volume.shape[0], args.norm)
    network.eval()
    common = {"num_angles": args.num_angles, "num_slices": args.num_slices, "slice_size": args.slice_size}
    methods = {
        "ToNNO": TomographicInferer(**common, progress=True),
        f"slice-wise LayerCAM ({args.layer})": SliceCAMInferer(
            "layercam", args.layer, axis=2, slice_size=args.slice_size
        ),
        f"Averaged LayerCAM ({args.layer})": TomographicInferer(
            **common, mode="averaged_cam", cam_layer=args.layer, progress=True
        ),
        f"Tomographic LayerCAM ({args.layer})": TomographicInferer(
            **common, mode="tomographic_cam", cam_layer=args.layer, progress=True
        ),
    }
    centre = [int(i) for i in np.unravel_index(int(volume[0].argmax()), volume.shape[1:])]
    rows = [
        (
            "input, channel 0",
            orthogonal_views(volume[0].numpy(), lambda v: grey(v, 0, float(volume[0].max())), centre=centre),
        )
    ]
    for name, inferer in methods.items():
        with torch.no_grad():
            heatmap = inferer(volume[None], network)[0, 0].numpy()
        limit = float(np.abs(heatmap).max())
        rows.append((name, orthogonal_views(heatmap, lambda v, lim=limit: diverging(v, lim), centre=centre)))
    labelled_grid(rows, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
