# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Serve a distilled segmenter with MONAI Label and check the mask it returns against ``segment.json``'s.

1. Export the segmenter (``distill.json``'s ``segmenter/``) as a bundle in the layout MONAI Label's
   ``BundleInferTask`` loads: ``configs/inference.json`` (``segment.json`` with the model read from the bundle's
   own ``models/``, the mask written over the probability under ``pred``, the key MONAI Label answers with,
   and without its file writers: MONAI Label writes the answer), ``configs/metadata.json``
   (the segmenter's inputs and outputs), ``models/model.pt``, ``network.json`` and ``threshold.json``.
2. Start ``monailabel start_server`` on localhost with ``examples/monailabel_app``.
3. Send one AutoPET study (SUV and CT stacked as one two-channel NIfTI, the one image MONAI Label takes) to
   ``POST /infer/tonno_student`` and compare the returned mask with ``segment.json``'s mask of the same study:
   same grid, same affine, same voxels.

MONAI Label is not a dependency of monai_tonno: 0.8.5 pins ``jsonschema`` 3.2 (monai_tonno needs 4), and its own
dependencies disagree (``pydicom-seg`` needs pydicom 2, the newest ``dicomweb-client`` and ``pynetdicom`` pydicom
3), so the server does not start until pydicom and those two are held back. Install it in its own environment::

    python3 -m venv .venv-label && . .venv-label/bin/activate
    pip install -c constraints.txt monailabel==0.8.5 nibabel SimpleITK openpyxl timm \
        "pydicom<3" "dicomweb-client<0.60" "pynetdicom<3"
    pip install --no-deps -e .
    python examples/serve_with_monailabel.py --segmenter outputs/autopet/segmenter
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nibabel as nib
import numpy as np

from monai_tonno.bundle import resolved_config
from monai_tonno.data import autopet_datalist, autopet_or_synthetic

ROOT = Path(__file__).resolve().parents[1]


def export_bundle(segmenter_dir: Path, bundle: Path, config_file: Path, metadata_file: Path) -> Path:
    """``segment.json`` and the segmenter's files in MONAI Label's bundle layout under ``bundle``."""
    for name in ("model.pt", "network.json"):
        if not (segmenter_dir / name).is_file():
            raise FileNotFoundError(f"{segmenter_dir / name} does not exist: run distill.json to the end first.")
    (bundle / "configs").mkdir(parents=True, exist_ok=True)
    (bundle / "models").mkdir(exist_ok=True)
    for name in ("model.pt", "network.json", "threshold.json"):
        if (segmenter_dir / name).is_file():
            shutil.copy2(segmenter_dir / name, bundle / "models" / name)
    config = resolved_config(config_file, ROOT)  # the copy leaves the repository, where its macros resolve
    config["ckpt_path"] = "$os.path.join(@bundle_root, 'models', 'model.pt')"
    kept = []
    for transform in config["postprocessing_transforms"]:
        if transform["_target_"] == "SaveImaged":
            continue
        if transform["_target_"].endswith("Binarized"):
            transform = {**transform, "output_keys": "pred"}  # MONAI Label answers with "pred": the mask, here
        if transform["_target_"].endswith("ConnectedComponentsd"):
            transform = {**transform, "keys": "pred", "relabel": False}  # one label, "lesion", as metadata says
        kept.append(transform)
    kept.append({"_target_": "SqueezeDimd", "keys": "pred", "dim": 0})  # MONAI Label writes (X, Y, Z) labels
    config["postprocessing_transforms"] = kept
    (bundle / "configs" / "inference.json").write_text(json.dumps(config, indent=4))
    network = json.loads((segmenter_dir / "network.json").read_text())
    metadata = json.loads(metadata_file.read_text())
    metadata["task"] = "Lesion segmentation distilled from ToNNO's masks (volume-level labels only)"
    metadata["network_data_format"] = {
        "inputs": {
            "image": {
                "type": "image",
                "format": "magnitude",
                "num_channels": network["network"]["in_channels"],
                "spatial_shape": ["*", "*", "*"],
                "dtype": "float32",
                "value_range": [None, None],
                "is_patch_data": True,
                "channel_def": {str(i): f"channel {i}" for i in range(network["network"]["in_channels"])},
            }
        },
        "outputs": {
            "pred": {
                "type": "image",
                "format": "segmentation",
                "num_channels": 1,
                "spatial_shape": ["*", "*", "*"],
                "dtype": "float32",
                "value_range": [0, 1],
                "is_patch_data": True,
                "channel_def": {"0": "background", "1": "lesion"},
            }
        },
    }
    (bundle / "configs" / "metadata.json").write_text(json.dumps(metadata, indent=4))
    return bundle


def wait_for_server(url: str, server: subprocess.Popen, timeout: float = 300) -> None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if server.poll() is not None:
            raise RuntimeError(f"monailabel exited with {server.returncode} before it answered {url}")
        try:
            with urllib.request.urlopen(f"{url}/info/", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(2)
    raise TimeoutError(f"monailabel did not answer {url}/info/ within {timeout:.0f} s")


def post_volume(url: str, volume: Path, output: Path) -> float:
    """``POST /infer/tonno_student`` with ``volume`` uploaded; the returned mask is written to ``output``."""
    boundary = "tonno-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="params"\r\n\r\n{{}}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{volume.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + volume.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{url}/infer/tonno_student?output=image",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        method="POST",
    )
    start = time.monotonic()
    with urllib.request.urlopen(request, timeout=600) as answer:
        output.write_bytes(answer.read())
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segmenter", type=Path, default=Path("outputs/autopet/segmenter"))
    parser.add_argument("--dataset_dir", type=Path, default=None, help="AutoPET folder (default: synthetic, seed 1)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--work_dir", type=Path, default=None, help="default: a temporary folder")
    args = parser.parse_args()
    work = (args.work_dir or Path(tempfile.mkdtemp(prefix="tonno_label_"))).resolve()
    dataset = args.dataset_dir or autopet_or_synthetic(
        None, Path("~/.cache/monai_tonno/synthetic_autopet").expanduser(), 20, 64, 1
    )
    study = next(item for item in autopet_datalist(dataset) if item["label"] == 1)
    suv_file, ct_file = (Path(p) for p in study["image"])
    print(f"study: {suv_file.parent}")

    # segment.json's mask of that one study, in a folder of the real layout
    folder = work / "one study" / "FDG-PET-CT-Lesions" / suv_file.parent.parent.name / suv_file.parent.name
    shutil.copytree(suv_file.parent, folder, dirs_exist_ok=True)
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "bundles/autopet/segment.json",
               "--dataset_dir", str(work / "one study"), "--output_dir", str(work / "segment"),
               "--ckpt_path", str(args.segmenter.resolve() / "model.pt"), "--device", "cpu"]  # fmt: skip
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    reference = nib.load(str(next((work / "segment" / "segmentations").rglob("SUV_mask.nii.gz"))))

    suv, ct = nib.load(str(suv_file)), nib.load(str(ct_file))
    stacked = work / "study_suv_ct.nii.gz"
    nib.save(nib.Nifti1Image(np.stack([suv.get_fdata(), ct.get_fdata()], -1).astype(np.float32), suv.affine), stacked)

    bundle = export_bundle(args.segmenter.resolve(), work / "bundle", ROOT / "bundles/autopet/segment.json",
                           ROOT / "bundles/autopet/metadata.json")  # fmt: skip
    (work / "studies").mkdir(exist_ok=True)
    url = f"http://127.0.0.1:{args.port}"
    server_command = ["monailabel", "start_server", "--app", str(ROOT / "examples" / "monailabel_app"),
                      "--studies", str(work / "studies"), "--conf", "bundle", str(bundle),
                      "--host", "127.0.0.1", "--port", str(args.port)]  # fmt: skip
    with open(work / "server.log", "w") as log:
        server = subprocess.Popen(server_command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_server(url, server)
        with urllib.request.urlopen(f"{url}/info/") as answer:
            models = json.loads(answer.read())["models"]
        print(f"served models: {list(models)}; labels {models['tonno_student']['labels']}")
        seconds = post_volume(url, stacked, work / "served_mask.nii.gz")
    finally:
        server.terminate()
        server.wait(timeout=60)
    served = nib.load(str(work / "served_mask.nii.gz"))
    served_mask = served.get_fdata()[..., 0] if served.ndim == 4 else served.get_fdata()
    reference_mask = reference.get_fdata() > 0
    if served_mask.shape != reference_mask.shape:
        raise SystemExit(f"FAILED: served mask {served_mask.shape}, segment.json's {reference_mask.shape}")
    affine_error = float(np.abs(served.affine - reference.affine).max())
    differing = int(((served_mask > 0) != reference_mask).sum())
    print(f"answered in {seconds:.1f} s: shape {served_mask.shape}, affine max difference {affine_error:.2e} mm, "
          f"{int((served_mask > 0).sum())} lesion voxels served, {int(reference_mask.sum())} by segment.json, "
          f"{differing} differing voxels")  # fmt: skip
    if affine_error > 1e-3 or differing:
        raise SystemExit(f"FAILED: the served mask differs from segment.json's (work folder {work})")
    print(f"OK (work folder {work})")


if __name__ == "__main__":
    main()
