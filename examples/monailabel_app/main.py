# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""A MONAI Label app that serves one distilled ToNNO segmenter, exported by ``examples/serve_with_monailabel.py``.

Start it with ``monailabel start_server --app examples/monailabel_app --studies <folder> --conf bundle <exported>``;
``POST /infer/tonno_student`` then returns the student's lesion mask of the uploaded volume.
"""

from __future__ import annotations

import os

from monailabel.interfaces.app import MONAILabelApp
from monailabel.tasks.infer.bundle import BundleInferTask


class _SetAside:
    """Move the request's ``image_path`` aside during preprocessing, and back for MONAI Label's writer: MONAI's
    ``Spacingd`` takes every ``image_*`` key for the image's meta dictionary and fails on that string."""

    def __init__(self, restore: bool) -> None:
        self.restore = restore

    def __call__(self, data: dict) -> dict:
        data = dict(data)
        source, target = "image_path", "_request_image_path"
        if self.restore:
            source, target = target, source
        if source in data:
            data[target] = data.pop(source)
        return data


class StudentInferTask(BundleInferTask):
    """``BundleInferTask`` with ``image_path`` kept out of the preprocessing's way."""

    def pre_transforms(self, data=None):
        return [_SetAside(restore=False), *super().pre_transforms(data)]

    def post_transforms(self, data=None):
        return [_SetAside(restore=True), *super().post_transforms(data)]


class ToNNOStudentApp(MONAILabelApp):
    """The exported bundle's ``configs/inference.json`` (segment.json's preprocessing, sliding-window inferer and
    postprocessing) as MONAI Label's bundle inference task."""

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        self.bundle = os.path.abspath(conf.get("bundle", ""))
        if not os.path.isfile(os.path.join(self.bundle, "configs", "inference.json")):
            raise ValueError(f"--conf bundle {self.bundle!r} holds no configs/inference.json; export one first.")
        super().__init__(app_dir, studies, conf, name="ToNNO student", description="ToNNO distilled into a 3D UNet")

    def init_infers(self) -> dict:
        # the bundle's own postprocessing inverts the preprocessing: MONAI Label must not restore the mask again
        task = StudentInferTask(self.bundle, self.conf, add_post_restore=False)
        if not task.is_valid():
            raise ValueError(f"MONAI Label cannot load the bundle {self.bundle!r} (see its log above).")
        return {"tonno_student": task}
