"""somseg.model: the saved bundle (round trip, integrity checks) and assignment."""

import json

import numpy as np
import pandas as pd
import pytest

from somseg.cleaning import FeatureCleaner
from somseg.config import FeatureSpec
from somseg.errors import ModelBundleError
from somseg.model import (
    MANIFEST_FILE,
    MODEL_FILE,
    SUITE_FILE,
    WEIGHTS_FILE,
    BundleSource,
    SegmentationModel,
)
from somseg.results import TrainingRecord

FEATURES = ["Age", "Family_Size"]


@pytest.fixture
def model() -> SegmentationModel:
    raw = pd.DataFrame({"Age": [20.0, 35.5, np.nan, 70.0], "Family_Size": [1.0, 4.0, 2.0, np.nan]})
    weights = np.arange(12, dtype=np.float64).reshape(2, 3, 2) / 7.0
    return SegmentationModel(
        id_column="CustomerID",
        features=[FeatureSpec(name="Age", min=18.0, max=100.0), FeatureSpec(name="Family_Size", min=1.0)],
        cleaner=FeatureCleaner(FEATURES).fit(raw),
        weights=weights,
        neuron_segment=np.array([0, 0, 1, 1, 2, 2], dtype=np.int64),
        labels={0: "Early Career Adults", 1: "Senior / Retired", 2: "Family-Oriented"},
        outlier_threshold=0.1 + 0.2,  # not exactly representable in decimal
        suite={"name": "customers", "expectations": [{"type": "not_null", "column": "CustomerID"}]},
        training=TrainingRecord(
            n_rows=4,
            quantization_error=0.4008123456789,
            topographic_error=float("nan"),
            segment_shares=[0.25, 0.5, 0.25],
            feature_reference={"Age": {"edges": [30.0], "shares": [0.25, 0.5, 0.25]}},
        ),
    )


def test_save_load_round_trip(tmp_path, model) -> None:
    folder = model.save(tmp_path / "bundle")
    assert sorted(p.name for p in folder.iterdir()) == sorted([MANIFEST_FILE, MODEL_FILE, SUITE_FILE, WEIGHTS_FILE])
    loaded = SegmentationModel.load(folder)
    assert loaded.id_column == "CustomerID"
    assert loaded.features == model.features
    assert loaded.feature_names == FEATURES
    assert loaded.weights.dtype == np.float64 and np.array_equal(loaded.weights, model.weights)
    assert loaded.grid_shape == (2, 3)
    assert loaded.neuron_segment.dtype == np.int64
    np.testing.assert_array_equal(loaded.neuron_segment, model.neuron_segment)
    assert loaded.labels == model.labels
    assert loaded.outlier_threshold == model.outlier_threshold
    assert loaded.suite == model.suite
    assert loaded.training == model.training
    assert loaded.libraries == model.libraries
    assert loaded.cleaner.to_dict() == model.cleaner.to_dict()
    new = pd.DataFrame({"Age": [np.nan, 44.4], "Family_Size": [3.0, np.nan]})
    assert np.array_equal(loaded.cleaner.transform(new), model.cleaner.transform(new))


def test_save_replaces_older_bundle(tmp_path, model) -> None:
    folder = tmp_path / "bundle"
    model.save(folder)
    (folder / "stray.txt").write_text("x", encoding="utf-8")
    model.outlier_threshold = 1.25
    model.save(folder)
    assert "stray.txt" not in {p.name for p in folder.iterdir()}
    assert SegmentationModel.load(folder).outlier_threshold == 1.25
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_model_json_records_format_and_grid(tmp_path, model) -> None:
    meta = json.loads((model.save(tmp_path / "b") / MODEL_FILE).read_text(encoding="utf-8"))
    assert (meta["format"], meta["format_version"]) == ("somseg-model", 1)
    assert meta["grid"] == {"rows": 2, "cols": 3, "topology": "rectangular"}
    assert meta["labels"] == {"0": "Early Career Adults", "1": "Senior / Retired", "2": "Family-Oriented"}


def _tamper_weights(folder) -> None:
    weights = np.load(folder / WEIGHTS_FILE)
    weights[0, 0, 0] += 1e-9
    with open(folder / WEIGHTS_FILE, "wb") as handle:
        np.save(handle, weights)


def _tamper_json(folder, name: str) -> None:
    path = folder / name
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("Senior / Retired", "Senior / retired").replace("not_null", "unique"), encoding="utf-8")


@pytest.mark.parametrize(
    "tamper, name",
    [
        (_tamper_weights, WEIGHTS_FILE),
        (lambda f: _tamper_json(f, MODEL_FILE), MODEL_FILE),
        (lambda f: _tamper_json(f, SUITE_FILE), SUITE_FILE),
    ],
    ids=["weights", "model-json", "suite"],
)
def test_tampering_is_detected(tmp_path, model, tamper, name) -> None:
    folder = model.save(tmp_path / "bundle")
    tamper(folder)
    with pytest.raises(ModelBundleError, match=f"checksum of {name} does not match"):
        SegmentationModel.load(folder)


def _edit_manifest(folder, **changes) -> None:
    path = folder / MANIFEST_FILE
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest.update(changes)
    path.write_text(json.dumps(manifest), encoding="utf-8")


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"format_version": 2}, "format version 2; this release reads version 1"),
        ({"format_version": "1"}, "format version '1'"),
        ({"format": "other"}, "is not a somseg-model bundle"),
    ],
)
def test_incompatible_manifest(tmp_path, model, changes, match) -> None:
    folder = model.save(tmp_path / "bundle")
    _edit_manifest(folder, **changes)
    with pytest.raises(ModelBundleError, match=match):
        SegmentationModel.load(folder)


def test_manifest_without_a_required_checksum(tmp_path, model) -> None:
    folder = model.save(tmp_path / "bundle")
    manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    del manifest["sha256"][SUITE_FILE]
    _edit_manifest(folder, sha256=manifest["sha256"])
    with pytest.raises(ModelBundleError, match=f"lists no checksum for {SUITE_FILE}"):
        SegmentationModel.load(folder)


def test_missing_bundle_file(tmp_path, model) -> None:
    folder = model.save(tmp_path / "bundle")
    (folder / WEIGHTS_FILE).unlink()
    with pytest.raises(ModelBundleError, match=f"is missing {WEIGHTS_FILE}"):
        SegmentationModel.load(folder)


def test_missing_folder(tmp_path) -> None:
    with pytest.raises(ModelBundleError, match="does not exist or is not a folder"):
        SegmentationModel.load(tmp_path / "absent")


def test_missing_manifest(tmp_path, model) -> None:
    folder = model.save(tmp_path / "bundle")
    (folder / MANIFEST_FILE).unlink()
    with pytest.raises(ModelBundleError, match=f"has no {MANIFEST_FILE}"):
        SegmentationModel.load(folder)


def test_unreadable_manifest(tmp_path, model) -> None:
    folder = model.save(tmp_path / "bundle")
    (folder / MANIFEST_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelBundleError, match="unreadable"):
        SegmentationModel.load(folder)


def test_assign_columns_and_dtypes(model) -> None:
    ids = pd.Series([101, 102, 103, 104], index=[7, 3, 9, 0], dtype=np.int64)
    out = model.assign(ids, np.array([0, 2, 5, 3]), np.array([0.1, 0.2, 0.9, 0.0]))
    assert list(out.columns) == ["CustomerID", "bmu", "segment", "segment_label", "quantization_error", "is_outlier"]
    assert out["CustomerID"].dtype == np.int64
    assert out["bmu"].dtype == np.int64
    assert out["segment"].dtype == np.int64
    assert isinstance(out["segment_label"].dtype, pd.StringDtype)
    assert out["quantization_error"].dtype == np.float64
    assert out["is_outlier"].dtype == np.bool_
    assert list(out.index) == [0, 1, 2, 3]
    assert out["CustomerID"].tolist() == [101, 102, 103, 104]
    assert out["bmu"].tolist() == [0, 2, 5, 3]
    assert out["segment"].tolist() == [0, 1, 2, 1]
    assert out["segment_label"].tolist() == [
        "Early Career Adults",
        "Senior / Retired",
        "Family-Oriented",
        "Senior / Retired",
    ]
    assert out["quantization_error"].tolist() == [0.1, 0.2, 0.9, 0.0]


def test_assign_keeps_string_ids(model) -> None:
    ids = pd.Series(["007", "A-1"], dtype=object)
    out = model.assign(ids, np.array([1, 4]), np.array([0.0, 0.0]))
    assert out["CustomerID"].tolist() == ["007", "A-1"]


def test_outlier_flag_is_strictly_above_threshold(model) -> None:
    t = model.outlier_threshold
    distances = np.array([np.nextafter(t, 0), t, np.nextafter(t, 1), t + 1.0])
    out = model.assign(pd.Series([1, 2, 3, 4]), np.zeros(4, dtype=np.int64), distances)
    assert out["is_outlier"].tolist() == [False, False, True, True]


def test_match_uses_bundle_weights(model) -> None:
    X = model.weights.reshape(-1, 2)[[5, 1]] + 1e-3
    np.testing.assert_array_equal(model.match(X).bmu, [5, 1])


def test_library_mismatches(model) -> None:
    assert model.library_mismatches() == {}
    model.libraries = dict(model.libraries, numpy="0.0.1", python="1.0")
    mismatches = model.library_mismatches()
    assert list(mismatches) == ["numpy"]
    assert mismatches["numpy"][0] == "0.0.1" and mismatches["numpy"][1] == np.__version__


def test_model_json_is_versioned_too(tmp_path, model) -> None:
    # A bundle whose model.json says another version is refused even with a matching manifest.
    folder = model.save(tmp_path / "bundle")
    meta = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
    (folder / MODEL_FILE).write_text(json.dumps({**meta, "format_version": 2}), encoding="utf-8")
    manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    from somseg.io import file_sha256

    manifest["sha256"][MODEL_FILE] = file_sha256(folder / MODEL_FILE)
    _edit_manifest(folder, sha256=manifest["sha256"])
    with pytest.raises(ModelBundleError, match="model.json has format version 2"):
        SegmentationModel.load(folder)


def test_a_bundle_source_is_known_by_its_content(tmp_path, model) -> None:
    import shutil

    first = BundleSource.of(model.save(tmp_path / "a"))
    second = BundleSource.of(shutil.copytree(tmp_path / "a", tmp_path / "b"))
    assert first.digest == second.digest and first.path != second.path
    _tamper_weights(tmp_path / "b")
    assert BundleSource.of(tmp_path / "b").digest != first.digest
    with pytest.raises(ModelBundleError, match="does not exist"):
        BundleSource.of(tmp_path / "absent")
