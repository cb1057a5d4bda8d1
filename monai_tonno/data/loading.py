# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Loading with one reader, so that when it refuses a file its reason is the error the user reads."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from monai.data import ImageReader
from monai.transforms import LoadImaged

__all__ = ["StrictLoadImaged"]


class StrictLoadImaged(LoadImaged):
    """``LoadImaged`` that reads with the reader it is given and no other.

    MONAI's ``LoadImaged(keys, reader=r)`` tries every other installed reader when ``r`` raises and then reports
    "cannot find a suitable reader ... please install the reader libraries", with ``r``'s reason buried among the
    others' tracebacks. For a DICOM series that :class:`~monai_tonno.data.SimpleITKReader` refuses on purpose (a
    missing slice, two series that fit the request) no other reader is right either, so its reason is raised as is.

    Args:
        keys: keys of the paths to load.
        reader: the reader, an ``ImageReader`` instance.
        kwargs: the other arguments of ``LoadImaged`` (``ensure_channel_first``, ``image_only``, ...).
    """

    def __init__(self, keys, reader: ImageReader, **kwargs: Any) -> None:
        if not isinstance(reader, ImageReader):
            raise TypeError(f"StrictLoadImaged needs an ImageReader instance, got {reader!r}.")
        super().__init__(keys, reader=reader, **kwargs)
        self.only_reader = reader

    def __call__(self, data: Mapping[Hashable, Any], reader: ImageReader | None = None) -> dict[Hashable, Any]:
        return super().__call__(data, reader=reader or self.only_reader)
