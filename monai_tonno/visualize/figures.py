# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Small PNG figures of volumes: three orthogonal views, grey or blue-white-red, tiled in a labelled grid."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

__all__ = ["diverging", "grey", "labelled_grid", "orthogonal_views"]


def grey(view: np.ndarray, low: float, high: float) -> np.ndarray:
    """``(H, W)`` values windowed to ``[low, high]`` as ``(H, W, 3)`` uint8 grey levels."""
    level = np.clip((view - low) / max(high - low, 1e-12), 0, 1) * 255
    return np.repeat(level.astype(np.uint8)[..., None], 3, axis=-1)


def diverging(view: np.ndarray, limit: float) -> np.ndarray:
    """``(H, W)`` signed values as blue (negative), white (zero), red (positive), saturating at ``+-limit``."""
    t = np.clip(view / max(limit, 1e-12), -1, 1)
    rgb = np.ones((*view.shape, 3))
    rgb[..., 0] -= np.clip(-t, 0, 1)  # negative: less red and green, stays blue
    rgb[..., 1] -= np.abs(t)
    rgb[..., 2] -= np.clip(t, 0, 1)  # positive: less blue and green, stays red
    return (rgb * 255).astype(np.uint8)


def _outline(mask: np.ndarray) -> np.ndarray:
    """The boundary pixels of a 2D mask."""
    mask = mask > 0
    return mask & ~ndimage.binary_erosion(mask)


def orthogonal_views(
    volume: np.ndarray,
    colour,
    zoom: int = 3,
    centre: Sequence[int] | None = None,
    outlines: Sequence[tuple[np.ndarray, Sequence[int]]] = (),
) -> Image.Image:
    """Slices through ``centre`` (default: the middle) along the three axes of a ``(X, Y, Z)`` volume, side by side.

    Args:
        volume: the volume.
        colour: maps a 2D array to ``(H, W, 3)`` uint8, e.g. ``lambda v: grey(v, 0, 1)``.
        zoom: pixel replication factor.
        centre: voxel the three slices pass through.
        outlines: ``(mask (X, Y, Z), RGB)`` pairs whose boundaries are drawn over the views, later ones on top.
    """
    centre = [n // 2 for n in volume.shape] if centre is None else centre
    planes = [np.s_[centre[0]], np.s_[:, centre[1]], np.s_[:, :, centre[2]]]
    tiles = []
    for plane in planes:
        rgb = np.array(colour(volume[plane].T[::-1]), dtype=np.uint8)
        for mask, outline_colour in outlines:
            rgb[_outline(np.asarray(mask)[plane].T[::-1])] = outline_colour
        tile = Image.fromarray(np.ascontiguousarray(rgb))
        tiles.append(tile.resize((tile.width * zoom, tile.height * zoom), Image.NEAREST))
    strip = Image.new(
        "RGB", (sum(t.width for t in tiles) + 6 * (len(tiles) - 1), max(t.height for t in tiles)), "white"
    )
    x = 0
    for tile in tiles:
        strip.paste(tile, (x, 0))
        x += tile.width + 6
    return strip


def labelled_grid(
    rows: Sequence[tuple[str, Image.Image]], path: str | Path | None = None, title_height: int = 16
) -> Image.Image:
    """Stack ``(title, image)`` rows vertically, each under its title; save as PNG when ``path`` is given."""
    width = max(image.width for _, image in rows)
    height = sum(image.height + title_height for _, image in rows)
    figure = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(figure)
    top = 0
    for title, image in rows:
        draw.text((4, top + 2), title, fill=(0, 0, 0))
        figure.paste(image, (0, top + title_height))
        top += image.height + title_height
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.save(path)
    return figure
