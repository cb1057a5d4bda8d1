"""The bundle configs are still copies of each other (issue 22); these tests keep the copies from drifting.

A split that differs between ``train.json`` and ``inference.json`` would score training studies as held out, and
an engine section edited in one bundle only would make the bundles disagree on what a "trained" model is. Both
would pass every run-through test, so they are checked here on the JSON itself.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = ("autopet", "mosmed", "duke")
KINDS = ("train", "inference", "evaluate", "distill", "segment")
# Keys that name the data and its split: every config of one bundle must read the same studies the same way.
DATA_KEYS = (
    "bundle_root",
    "output_dir",
    "dataset_dir",
    "cache_dir",
    "synthetic_patients",
    "synthetic_size",
    "synthetic_seed",
    "label_cache",
    "series_cache",
    "boxes_file",
    "val_fraction",
    "split_seed",
    "data_root",
    "datalist",
    "body_channel",
    "body_threshold",
    "restrict_to_body",
    "min_component_voxels",
)
# The engine wiring of the classifier's training, the same in every bundle.
TRAIN_ENGINE = (
    ("loss",),
    ("optimizer",),
    ("lr_scheduler",),
    ("training",),
    ("train", "handlers"),
    ("train", "checkpoint_saver"),
    ("train", "trainer"),
    ("validate", "evaluator"),
    ("validate", "key_metric"),
    ("validate", "additional_metrics"),
    ("validate", "readiness"),
    ("validate", "model_saver"),
)


def _config(bundle: str, name: str) -> dict:
    return json.loads((ROOT / "bundles" / bundle / f"{name}.json").read_text())


def _lookup(config: dict, path: tuple) -> object:
    for key in path:
        config = config[key]
    return config


@pytest.mark.parametrize("bundle", BUNDLES)
def test_every_config_of_a_bundle_reads_the_same_studies(bundle):
    configs = {kind: _config(bundle, kind) for kind in KINDS}
    for key in DATA_KEYS:
        values = {kind: json.dumps(config[key]) for kind, config in configs.items() if key in config}
        assert len(set(values.values())) <= 1, f"{bundle}: {key} differs between configs: {values}"
    calls = {}
    for kind, config in configs.items():
        found = re.findall(r"split_by_patient\([^()]*(?:\([^()]*\)[^()]*)*\)", config["split"])
        assert len(found) == 1, f"{bundle}/{kind}.json: split must call split_by_patient once, got {config['split']!r}"
        calls[kind] = found[0]
    assert len(set(calls.values())) == 1, f"{bundle}: the configs split the studies differently: {calls}"


@pytest.mark.parametrize("path", TRAIN_ENGINE, ids=lambda path: "#".join(path))
def test_training_engine_is_the_same_in_every_bundle(path):
    values = {bundle: _lookup(_config(bundle, "train"), path) for bundle in BUNDLES}
    assert values["autopet"] == values["mosmed"] == values["duke"], "#".join(path) + " differs between bundles"


@pytest.mark.parametrize("name", ["multi_gpu_train", "multi_gpu_inference", "multi_gpu_distill"])
def test_multi_gpu_overlays_are_the_same_in_autopet_and_mosmed(name):
    assert _config("autopet", name) == _config("mosmed", name)
