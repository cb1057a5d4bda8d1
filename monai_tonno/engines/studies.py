# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Inference over a folder of studies as a loop of independent studies that a kill or a bad file cannot spoil.

Each study is read, inferred, postprocessed and written on its own: one that cannot be read (a truncated NIfTI, a
DICOM series with a missing slice) is named with its reason and counted, and the others finish; the run ends with
an error that lists them. Outputs are written atomically (:class:`~monai_tonno.data.AtomicNibabelWriter`), and a
study's *record* (``<record_dir>/<name>-<key>.json``) is written last, holding the fingerprint of what the outputs
came from (the model's and threshold's content, the settings, this package's version) and the files written. A
rerun skips every study whose record matches and whose outputs are all there as recorded, so a run of a thousand
studies killed at study 900 resumes at 900, and a new model or new settings redo everything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from monai.data import MetaTensor, decollate_batch, list_data_collate
from torch import nn
from tqdm.auto import tqdm

from monai_tonno.atomic import file_digest, file_stamp, write_json_atomic

__all__ = ["StudyFailures", "StudyReport", "completed_outputs", "infer_studies", "run_fingerprint", "study_name"]

logger = logging.getLogger(__name__)

_RECORD_VERSION = 1


class StudyFailures(RuntimeError):
    """Some studies of a run could not be processed; the others were. ``failures`` maps each study to its reason."""

    def __init__(self, what: str, failures: Mapping[str, str], done: int) -> None:
        self.failures = dict(failures)
        listed = "\n".join(f"  {name}: {reason}" for name, reason in self.failures.items())
        super().__init__(
            f"{what}: {len(self.failures)} of {len(self.failures) + done} studies failed (the {done} others were "
            f"processed):\n{listed}"
        )


@dataclass
class StudyReport:
    """What a run over studies did: the names of the studies inferred, skipped as complete, and failed (with why)."""

    inferred: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def study_name(item: Mapping[str, Any]) -> str:
    """A name a person recognises for a datalist item: its breast, patient/study, or image path."""
    if item.get("breast"):
        return str(item["breast"])
    if item.get("patient") and item.get("study"):
        return f"{item['patient']}/{item['study']}"
    image = item.get("image", "")
    image = image[0] if isinstance(image, (list, tuple)) and image else image
    return str(image) if isinstance(image, (str, Path)) else str(item.get("patient", "study"))


def describe_error(error: BaseException) -> str:
    """``Type: message`` of an error and of the error it was raised from (MONAI wraps a reader's reason in a
    ``RuntimeError`` of its transform chain; the reason is what the user needs)."""
    causes, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        text = str(error).strip().splitlines()
        causes.append(f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": "))
        error = error.__cause__ or error.__context__
    innermost = [c for c in causes if not c.startswith("RuntimeError: applying transform")]
    return " <- ".join(innermost or causes)


def run_fingerprint(depends_on: Sequence[str | Path | None] = (), settings: Mapping[str, Any] | None = None) -> str:
    """The SHA-256 of what a run's outputs come from: the content of each file in ``depends_on`` (the model, the
    threshold file; a missing file counts as absent), ``settings`` (JSON-serialisable) and this package's version."""
    from monai_tonno import __version__

    files = {}
    for path in depends_on:
        if path is None or not str(path):
            continue
        files[str(path)] = file_digest(path) if Path(path).is_file() else "absent"
    description = {"files": sorted(files.values()), "settings": settings or {}, "version": __version__}
    return hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()


def _inputs(item: Mapping[str, Any], image_key: str) -> str:
    images = item.get(image_key, "")
    images = images if isinstance(images, (list, tuple)) else [images]
    return ", ".join(repr(str(image)) for image in images)


def _record_path(record_dir: Path, item: Mapping[str, Any]) -> Path:
    key = hashlib.sha256(json.dumps(dict(item), sort_keys=True, default=str).encode()).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", study_name(item))[-80:]
    return record_dir / f"{readable}-{key}.json"


def completed_outputs(record_dir: str | Path, item: Mapping[str, Any], fingerprint: str) -> list[str] | None:
    """The files that :func:`infer_studies` wrote for ``item`` in the run of ``fingerprint``
    (:func:`run_fingerprint`), or ``None`` when that study has no complete record of this run (never inferred,
    inferred with other settings or models, or an output changed since)."""
    record_path = _record_path(Path(record_dir), item)
    if not _is_complete(record_path, fingerprint):
        return None
    return list(json.loads(record_path.read_text())["outputs"])


def _is_complete(record_path: Path, fingerprint: str) -> bool:
    try:
        record = json.loads(record_path.read_text())
        outputs = record["outputs"]
        return (
            record.get("version") == _RECORD_VERSION
            and record.get("fingerprint") == fingerprint
            and bool(outputs)
            and all(Path(path).is_file() and file_stamp(Path(path)) == stamp for path, stamp in outputs.items())
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False  # no record, or an unreadable one: the study is inferred again


def _saved_files(data: Any) -> list[Path]:
    """The files ``SaveImaged(..., savepath_in_metadict=True)`` wrote, from the ``saved_to`` of every MetaTensor."""
    values = data.values() if isinstance(data, Mapping) else data if isinstance(data, (list, tuple)) else [data]
    found = []
    for value in values:
        if isinstance(value, MetaTensor) and value.meta.get("saved_to"):
            found.append(Path(value.meta["saved_to"]))
        elif isinstance(value, (Mapping, list, tuple)):
            found += _saved_files(value)
    return sorted(set(found))


def infer_studies(
    items: Sequence[Mapping[str, Any]],
    preprocessing: Callable,
    network: nn.Module,
    inferer: Callable,
    postprocessing: Callable,
    record_dir: str | Path,
    depends_on: Sequence[str | Path | None] = (),
    settings: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    image_key: str = "image",
    pred_key: str = "pred",
    progress: bool = True,
    raise_on_failure: bool = True,
) -> StudyReport:
    """Infer every study of ``items`` on its own, skipping those already complete, and name those that fail.

    Per study: ``preprocessing(item)``, ``inferer(image[None], network)`` under ``no_grad``, then
    ``postprocessing`` of the item with the prediction under ``pred_key`` (as MONAI's ``SupervisedEvaluator``
    collates, infers and decollates; its ``SaveImaged`` must set ``savepath_in_metadict=True`` so that the files it
    writes are recorded).

    Args:
        items: the datalist.
        preprocessing: the transform that reads and prepares one item.
        network: the trained network (put in eval mode here).
        inferer: e.g. :class:`~monai_tonno.inferers.TomographicInferer`.
        postprocessing: the transform that binarises and writes the outputs of one item.
        record_dir: where each study's record goes.
        depends_on: the files the outputs depend on (the model, the threshold file): a change of content redoes
            every study.
        settings: the parameters the outputs depend on (directions, binarisation, ...): a change redoes every
            study.
        device: where the network runs.
        image_key: the input's key.
        pred_key: the key the prediction is stored under for postprocessing.
        progress: show a progress bar.
        raise_on_failure: end with :class:`StudyFailures` when a study failed (so that the command exits non-zero
            once every other study is done).

    Returns:
        which studies were inferred, skipped and failed.
    """
    record_dir = Path(record_dir)
    fingerprint = run_fingerprint(depends_on, settings)
    report = StudyReport()
    network.eval()
    for item in tqdm(items, desc="inferring studies", disable=not progress):
        name, record_path = study_name(item), _record_path(record_dir, item)
        if _is_complete(record_path, fingerprint):
            report.skipped.append(name)
            continue
        stage = f"reading {_inputs(item, image_key)}"
        try:
            data = preprocessing(dict(item))
            stage = "inferring"
            batch = list_data_collate([data])
            with torch.no_grad():
                prediction = inferer(batch[image_key].to(device), network)
            output = decollate_batch({**batch, pred_key: prediction}, detach=True)[0]
            stage = "postprocessing and writing the outputs"
            written = _saved_files(postprocessing(output))
        except Exception as error:  # one study's failure is named and counted; the others go on
            report.failed[name] = f"{describe_error(error)} (while {stage})"
            logger.error("could not infer %s: %s", name, report.failed[name])
            logger.debug("%s", traceback.format_exc())
            continue
        if written:
            write_json_atomic(
                record_path,
                {
                    "version": _RECORD_VERSION,
                    "study": name,
                    "fingerprint": fingerprint,
                    "outputs": {str(path): file_stamp(path) for path in written},
                },  # fmt: skip
            )
        report.inferred.append(name)
    logger.info(
        "inferred %d studies, skipped %d whose outputs were complete, %d failed",
        len(report.inferred), len(report.skipped), len(report.failed),
    )  # fmt: skip
    if report.failed and raise_on_failure:
        raise StudyFailures("inference", report.failed, len(report.inferred) + len(report.skipped))
    return report
