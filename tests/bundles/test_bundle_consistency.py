"""What the bundle configs share lives once, and cannot drift.

The engine wiring that the three bundles share (trainer, handlers, checkpoints, calibration, the inferer, the
postprocessing) lives in ``bundles/common/<config>.json``, and each bundle's config names it with a MONAI macro
(``"%bundles/common/train.json#train"``); what one bundle's configs share (its split, its source of studies, its
image preprocessing) lives in its ``train.json`` and the other configs name it there. A copy pasted back into a
bundle, a macro MONAI cannot resolve (macros resolve one level: a macro's target must hold none), or a split that
differs between training and inference would pass every run-through test, so they are checked here on the JSON.
"""

import json
import re
from pathlib import Path

import pytest

from monai_tonno.bundle import resolved_config as resolve

ROOT = Path(__file__).resolve().parents[2]
BUNDLES = ("autopet", "mosmed", "duke")
KINDS = ("train", "inference", "evaluate", "distill", "segment")
OVERLAYS = ("multi_gpu_train", "multi_gpu_inference", "multi_gpu_distill")
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


def raw_config(bundle: str, name: str) -> dict:
    return json.loads((ROOT / "bundles" / bundle / f"{name}.json").read_text())


def resolved_config(bundle: str, name: str) -> dict:
    """The config as MONAI runs it: macros replaced by their targets (paths relative to the repository root)."""
    return resolve(ROOT / "bundles" / bundle / f"{name}.json", ROOT)


def _strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def _is_wiring(value) -> bool:
    """Not a knob: an expression, or a structure that holds components or references."""
    if isinstance(value, dict):
        return True
    if isinstance(value, list):
        return any(isinstance(v, (dict, list)) for v in value) or any(s.startswith(("$", "@")) for s in _strings(value))
    return isinstance(value, str) and value.startswith("$")


@pytest.mark.parametrize("name", KINDS + OVERLAYS)
def test_shared_files_hold_no_macro(name):
    """MONAI resolves macros one level deep: a macro inside a shared file would reach the run unresolved."""
    path = ROOT / "bundles" / "common" / f"{name}.json"
    for text in _strings(json.loads(path.read_text())):
        assert not text.startswith("%"), f"{path.name}: {text!r} is a macro"
        assert not text.startswith("@#"), f"{path.name}: {text!r} is a relative reference"


@pytest.mark.parametrize(
    "bundle, name",
    [(b, n) for b in BUNDLES for n in KINDS + OVERLAYS if (ROOT / "bundles" / b / f"{n}.json").is_file()],
)
def test_every_macro_resolves(bundle, name):
    config = resolved_config(bundle, name)
    left = [text for text in _strings(config) if text.startswith("%")]
    assert not left, f"{bundle}/{name}.json: unresolved after MONAI's macro pass: {left}"


@pytest.mark.parametrize("name", KINDS + OVERLAYS)
def test_wiring_shared_by_every_bundle_is_named_not_copied(name):
    """A value the bundles have in common must come from bundles/common, or a fix lands in one bundle only."""
    bundles = [b for b in BUNDLES if (ROOT / "bundles" / b / f"{name}.json").is_file()]
    raw = {b: raw_config(b, name) for b in bundles}
    resolved = {b: resolved_config(b, name) for b in bundles}
    for key, value in resolved[bundles[0]].items():
        if key == "imports":  # a declaration each config makes itself (tools read it unresolved); checked below
            continue
        if not _is_wiring(value) or not all(resolved[b].get(key) == value for b in bundles):
            continue
        for bundle in bundles:
            assert str(raw[bundle][key]).startswith("%bundles/common/"), (
                f"{bundle}/{name}.json#{key} is the same in every bundle: name it from bundles/common, not a copy"
            )


@pytest.mark.parametrize("bundle", BUNDLES)
def test_every_config_of_a_bundle_reads_the_same_studies(bundle):
    configs = {kind: resolved_config(bundle, kind) for kind in KINDS}
    for key in DATA_KEYS:
        values = {kind: json.dumps(config[key]) for kind, config in configs.items() if key in config}
        assert len(set(values.values())) <= 1, f"{bundle}: {key} differs between configs: {values}"
    calls = {}
    for kind, config in configs.items():
        found = re.findall(r"split_by_patient\([^()]*(?:\([^()]*\)[^()]*)*\)", config["split"])
        assert len(found) == 1, f"{bundle}/{kind}.json: split must call split_by_patient once, got {config['split']!r}"
        calls[kind] = found[0]
    assert len(set(calls.values())) == 1, f"{bundle}: the configs split the studies differently: {calls}"


@pytest.mark.parametrize("bundle", BUNDLES)
def test_inference_resamples_as_training_did(bundle):
    """One image preprocessing per bundle: inference, distillation's teacher and the segmenter name training's."""
    train = resolved_config(bundle, "train")["preprocessing_transforms"]
    for kind in ("inference", "distill", "segment"):
        assert resolved_config(bundle, kind)["preprocessing"]["transforms"] == train, f"{bundle}/{kind}.json"


@pytest.mark.parametrize("bundle", BUNDLES)
def test_evaluation_reads_its_images_as_training_did(bundle):
    """Evaluation loads the masks too, so it spells its preprocessing out; the image's steps must be training's."""
    train = [t for t in resolved_config(bundle, "train")["preprocessing_transforms"] if t["_target_"] != "DeleteItemsd"]
    evaluate = resolved_config(bundle, "evaluate")["preprocessing"]["transforms"]
    assert [t["_target_"] for t in evaluate] == [t["_target_"] for t in train], f"{bundle}/evaluate.json"
    for seen, trained in zip(evaluate, train, strict=True):
        assert "image" in _keys(seen) and set(_keys(seen)) <= {"image", "mask"}, f"{bundle}/evaluate.json: {seen}"
        for arg in set(trained) - {"keys", "pixdim"}:  # the pixdim is the checkpoint's (checked above)
            seen_value, value = _for_image(seen, arg), _for_image(trained, arg)
            assert seen_value == value, f"{bundle}/evaluate.json: {seen['_target_']}.{arg} {seen_value!r} != {value!r}"


def _keys(transform: dict) -> list:
    return [transform["keys"]] if isinstance(transform["keys"], str) else list(transform["keys"])


def _for_image(transform: dict, arg: str):
    """A transform's argument as the image gets it (``mode`` may be one per key)."""
    value = transform.get(arg)
    if arg == "mode" and isinstance(value, list):
        return value[_keys(transform).index("image")]
    return value


def test_resolving_a_config_that_does_not_exist_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such.json.*bundle config file"):
        resolve(tmp_path / "no_such.json", ROOT)
    with pytest.raises(FileNotFoundError, match="bundle root"):
        resolve(ROOT / "bundles" / "autopet" / "train.json", tmp_path / "elsewhere")


@pytest.mark.parametrize("bundle", BUNDLES)
@pytest.mark.parametrize("name", KINDS)
def test_every_config_imports_what_its_shared_wiring_needs(bundle, name):
    """The imports stay in each config, written out; they must hold every import its shared file declares."""
    shared = json.loads((ROOT / "bundles" / "common" / f"{name}.json").read_text())["imports"]
    imports = raw_config(bundle, name)["imports"]
    assert isinstance(imports, list), f"{bundle}/{name}.json: imports must be a list, not {imports!r}"
    assert set(shared) <= set(imports), f"{bundle}/{name}.json lacks {sorted(set(shared) - set(imports))}"


@pytest.mark.parametrize("bundle", BUNDLES)
@pytest.mark.parametrize("name", ("inference", "evaluate", "distill"))
def test_the_reconstruction_knobs_reach_the_reconstructor(bundle, name):
    """``--reconstruction iterative --iterations N`` becomes an IterativeReconstruction factory with N iterations;
    the default is the inferer's filtered backprojection shorthand."""
    from monai.bundle import ConfigParser

    from monai_tonno.tomography.reconstruction import IterativeReconstruction

    def reconstructor(**overrides):
        parser = ConfigParser(resolved_config(bundle, name))
        parser.update(overrides)
        parser.get_parsed_content("imports")
        return parser.get_parsed_content("reconstructor")

    assert reconstructor() == "filtered_backprojection"
    iterative = reconstructor(reconstruction="iterative", iterations=7)
    assert iterative.func is IterativeReconstruction and iterative.keywords == {"iterations": 7}
