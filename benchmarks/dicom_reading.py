# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Reading time of a real-sized DICOM series: monai_tonno's SimpleITKReader against MONAI's own DICOM readers.

Writes one series (default 448 x 448 x 160, int16, shuffled file names) and reads it with ``LoadImage`` and
each reader that is installed: ``SimpleITKReader`` (always), MONAI's ``PydicomReader`` (``pip install
pydicom``) and ``ITKReader`` (``pip install itk``). Each reader's array and affine are checked against
SimpleITKReader's before its time counts. Example::

    python benchmarks/dicom_reading.py --shape 448 448 160 --repeats 3
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np
from monai.transforms import LoadImage

from monai_tonno.data import SimpleITKReader, write_dicom_series


def readers() -> dict:
    found = {"SimpleITKReader (monai_tonno)": SimpleITKReader()}
    if importlib.util.find_spec("pydicom"):
        from monai.data import PydicomReader

        found["PydicomReader (MONAI)"] = PydicomReader()
    if importlib.util.find_spec("itk"):
        from monai.data import ITKReader

        found["ITKReader (MONAI)"] = ITKReader()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", nargs=3, type=int, default=[448, 448, 160], help="columns rows slices")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "1.000000-ax dyn pre-12345"
        volume = np.random.default_rng(0).integers(0, 2000, args.shape).astype(np.int16)
        start = time.perf_counter()
        write_dicom_series(volume, folder, (0.7, 0.7, 1.1), (-150.0, -160.0, -80.0), file_names="shuffled")
        seconds = time.perf_counter() - start
        print(f"wrote {args.shape[2]} slices of {args.shape[0]} x {args.shape[1]} in {seconds:.1f} s")
        reference = None
        for name, reader in readers().items():
            load = LoadImage(reader=reader, image_only=True)
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                image = load(folder)
                times.append(time.perf_counter() - start)
            array, affine = np.asarray(image, dtype=np.float32), np.asarray(image.affine)
            if reference is None:
                reference = (array, affine)
            same = array.shape == reference[0].shape and np.array_equal(array, reference[0])
            same = same and np.allclose(affine, reference[1], atol=1e-3)
            agrees = "same array and affine as SimpleITKReader" if same else f"DIFFERS (shape {array.shape})"
            print(f"{name}: best {min(times):.2f} s, median {np.median(times):.2f} s over {args.repeats} ({agrees})")


if __name__ == "__main__":
    main()
