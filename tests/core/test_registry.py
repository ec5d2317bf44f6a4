"""somseg.registry: versions, the promoted pointer, promotion rules, rollback; a bundle's provenance."""

import json
import re
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from somseg.cleaning import FeatureCleaner
from somseg.config import FeatureSpec, PromotionConfig
from somseg.dataset import SourcePart, source_digest
from somseg.errors import DataError, ModelBundleError
from somseg.io import file_sha256, write_parquet
from somseg.model import (
    MANIFEST_FILE,
    PROVENANCE_FILE,
    SegmentationModel,
    add_provenance,
    bundle_version,
    read_provenance,
    scoring_metadata,
    version_name,
)
from somseg.registry import (
    CURRENT_FILE,
    HISTORY_FILE,
    VERSIONS_DIR,
    Comparison,
    LabelAgreement,
    check_registry_folder,
    compare_labels,
    decide,
    describe,
    list_versions,
    promote,
    read_current,
    register_and_promote,
    registry_lock,
    resolve_model,
    rollback,
)
from somseg.results import PromotionRecord, Provenance, TrainingRecord
from somseg.runs import record_promotion

NOW = "2026-11-30T02:05:12+00:00"


def _bundle(folder: Path, seed: int = 0, trained_at: str | None = NOW, run_id: str | None = "run-1") -> Path:
    """A tiny bundle (a 2x2 map of two features); with provenance unless ``trained_at`` is None."""
    raw = pd.DataFrame({"Age": [20.0, 40.0, 60.0], "Size": [1.0, 2.0, 3.0]})
    model = SegmentationModel(
        id_column="ID",
        features=[FeatureSpec(name="Age"), FeatureSpec(name="Size")],
        cleaner=FeatureCleaner(["Age", "Size"]).fit(raw),
        weights=np.random.default_rng(seed).normal(size=(2, 2, 2)),
        neuron_segment=np.array([0, 0, 1, 1], dtype=np.int64),
        labels={0: "Young", 1: "Old"},
        outlier_threshold=1.0,
        suite={"name": "s", "expectations": []},
        training=TrainingRecord(n_rows=3, quantization_error=0.1, topographic_error=0.0, segment_shares=[0.5, 0.5],
                                feature_reference={}),
    )
    model.save(folder)
    if trained_at is not None:
        add_provenance(folder, Provenance(trained_at=trained_at, training_run_id=run_id, input="customers.csv",
                                          input_sha256="ab" * 32, config_sha256="cd" * 32))
    return folder


def _promote_new(registry: Path, bundle: Path, promotion: PromotionConfig = PromotionConfig(),
                 comparison: Comparison | None = None, gates_passed: bool = True) -> PromotionRecord:
    return register_and_promote(registry, bundle, promotion, gates_passed, comparison, NOW)


# --- a bundle's provenance and version ----------------------------------------------------------


def test_provenance_is_sealed_in_the_manifest_and_read_back(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "model")

    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    assert manifest["sha256"][PROVENANCE_FILE] == file_sha256(bundle / PROVENANCE_FILE)
    assert manifest["format_version"] == 1, "an optional file: older bundles still read"
    loaded = SegmentationModel.load(bundle)
    assert loaded.provenance is not None and loaded.provenance.training_run_id == "run-1"
    assert re.fullmatch(r"20261130T020512Z-[0-9a-f]{8}", bundle_version(bundle) or "")
    # The model keeps its provenance when saved again (the copy a scoring run keeps).
    assert read_provenance(loaded.save(tmp_path / "copy")) == loaded.provenance


def test_a_bundle_without_provenance_has_no_version(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "model", trained_at=None)

    assert bundle_version(bundle) is None and SegmentationModel.load(bundle).provenance is None
    assert scoring_metadata(None, None) == {}


def test_edited_provenance_is_refused(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "model")
    (bundle / PROVENANCE_FILE).write_text((bundle / PROVENANCE_FILE).read_text().replace("run-1", "run-2"))

    with pytest.raises(ModelBundleError, match="checksum of provenance.json does not match"):
        SegmentationModel.load(bundle)


def test_versions_sort_by_training_time_and_differ_by_content(tmp_path: Path) -> None:
    assert version_name("2026-11-30T03:05:12+01:00", "0123456789") == "20261130T020512Z-01234567"
    same_time = {bundle_version(_bundle(tmp_path / f"m{seed}", seed=seed)) for seed in range(3)}
    assert len(same_time) == 3


def test_scoring_metadata_names_the_version_and_the_training_run(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "model")
    metadata = scoring_metadata("v1", read_provenance(bundle))

    assert metadata == {"somseg.model_version": "v1", "somseg.trained_at": NOW, "somseg.training_run_id": "run-1",
                        "somseg.training_input": "customers.csv", "somseg.training_input_sha256": "ab" * 32}
    path = write_parquet(tmp_path / "segments.parquet", pd.DataFrame({"ID": [1, 2]}), metadata=metadata)
    stored = pq.read_schema(path).metadata
    assert stored[b"somseg.model_version"] == b"v1" and b"pandas" in stored
    pd.testing.assert_frame_equal(pd.read_parquet(path), pd.DataFrame({"ID": [1, 2]}))


def test_the_input_digest_is_the_files_own_or_of_the_files_in_order() -> None:
    one = [SourcePart("a.parquet", "parquet", (0,), 5, "d1"), SourcePart("a.parquet", "parquet", (1,), 5, "d1")]
    assert source_digest(one) == "d1"
    two = [SourcePart("a.parquet", "parquet", (0,), 5, "d1"), SourcePart("b.parquet", "parquet", (0,), 5, "d2")]
    assert source_digest(two) != source_digest(list(reversed(two))) and len(source_digest(two)) == 64


# --- registering and promoting ---------------------------------------------------------------------


def test_the_first_version_is_registered_whole_and_promoted(tmp_path: Path) -> None:
    registry = tmp_path / "models"
    record = _promote_new(registry, _bundle(tmp_path / "run" / "model"))

    assert record.promoted and record.previous is None and record.current == record.version
    assert list_versions(registry) == [record.version]
    SegmentationModel.load(registry / VERSIONS_DIR / record.version)
    current = read_current(registry)
    assert current is not None and current.version == record.version and current.previous is None
    assert sorted(p.name for p in (registry / VERSIONS_DIR).iterdir()) == [record.version], "no temporary copy left"
    assert resolve_model(registry).bundle == registry.resolve() / VERSIONS_DIR / record.version


def test_registering_the_same_bundle_again_is_a_no_op(tmp_path: Path) -> None:
    registry, bundle = tmp_path / "models", _bundle(tmp_path / "model")
    first = _promote_new(registry, bundle)
    again = _promote_new(registry, bundle)  # a retried step

    assert again.version == first.version and again.promoted
    assert list_versions(registry) == [first.version]
    assert len((registry / HISTORY_FILE).read_text().splitlines()) == 1


def test_a_bundle_without_provenance_is_not_registered(tmp_path: Path) -> None:
    with pytest.raises(ModelBundleError, match="records no provenance"):
        _promote_new(tmp_path / "models", _bundle(tmp_path / "model", trained_at=None))


def test_a_new_version_replaces_the_promoted_one_and_records_it(tmp_path: Path) -> None:
    registry = tmp_path / "models"
    first = _promote_new(registry, _bundle(tmp_path / "a", seed=1))
    second = _promote_new(registry, _bundle(tmp_path / "b", seed=2))

    assert second.promoted and second.previous == first.version
    pointer = read_current(registry)
    assert pointer is not None and (pointer.version, pointer.previous) == (second.version, first.version)
    history = [json.loads(line)["version"] for line in (registry / HISTORY_FILE).read_text().splitlines()]
    assert history == [first.version, second.version]


def test_a_refused_promotion_registers_but_keeps_the_promoted_version(tmp_path: Path) -> None:
    registry = tmp_path / "models"
    first = _promote_new(registry, _bundle(tmp_path / "a", seed=1))
    strict = PromotionConfig(min_label_agreement=0.9)
    second = _promote_new(registry, _bundle(tmp_path / "b", seed=2), strict,
                          Comparison(first.version, LabelAgreement(80, 100)))

    assert not second.promoted and second.current == first.version and second.label_agreement == 0.8
    assert "80.0% of the training rows keep their segment label" in second.reason
    assert "below promotion.min_label_agreement 0.9" in second.reason
    assert list_versions(registry) == sorted([first.version, second.version])
    assert resolve_model(registry).version == first.version


@pytest.mark.parametrize(
    ("promotion", "gates", "current", "comparison", "promoted", "words"),
    [
        (PromotionConfig(), False, "v1", None, False, "gates did not pass"),
        (PromotionConfig(auto=False), True, "v1", None, False, "promotion.auto is false"),
        (PromotionConfig(), True, "v1", None, True, "the gates passed"),
        (PromotionConfig(min_label_agreement=0.9), True, None, None, True, "no version was promoted yet"),
        (PromotionConfig(min_label_agreement=0.9), True, "v2", Comparison("v1", LabelAgreement(99, 100)), False,
         "the promoted version is now v2, but this run compared its labels with v1"),
        (PromotionConfig(min_label_agreement=0.9), True, "v1", Comparison("v1", None, "other features"), False,
         "could not be compared with v1: other features"),
        (PromotionConfig(min_label_agreement=0.9), True, "v1", Comparison("v1", LabelAgreement(90, 100)), True,
         "90.0% of the training rows keep their segment label"),
    ],
    ids=["gates", "manual", "no-check", "first-version", "raced", "other-features", "agreeing"],
)
def test_promotion_rules(promotion: PromotionConfig, gates: bool, current: str | None, comparison: Comparison | None,
                         promoted: bool, words: str) -> None:
    decision, reason = decide(promotion, gates, current, comparison)
    assert decision is promoted and words in reason


def test_label_agreement_is_the_share_of_rows_keeping_their_label() -> None:
    total = compare_labels(["a", "b", "c"], ["a", "x", "c"]) + compare_labels(["a"], ["a"])
    assert (total.agree, total.total, total.share) == (3, 4, 0.75)
    with pytest.raises(ValueError, match="cannot be compared"):
        compare_labels(["a"], ["a", "b"])


def test_two_trainings_finishing_together_both_register_and_promote_in_turn(tmp_path: Path) -> None:
    registry = tmp_path / "models"
    bundles = [_bundle(tmp_path / f"m{seed}", seed=seed) for seed in range(4)]
    records: list[PromotionRecord] = []
    threads = [threading.Thread(target=lambda b=b: records.append(_promote_new(registry, b))) for b in bundles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(records) == 4 and all(record.promoted for record in records)
    assert sorted(list_versions(registry)) == sorted(record.version for record in records)
    # Each promotion saw the one before it: the history is one chain, ending at CURRENT.
    history = [json.loads(line) for line in (registry / HISTORY_FILE).read_text().splitlines()]
    assert [entry["previous"] for entry in history] == [None] + [entry["version"] for entry in history[:-1]]
    current = read_current(registry)
    assert current is not None and current.version == history[-1]["version"]


def test_a_held_lock_is_waited_for_then_refused(tmp_path: Path) -> None:
    registry = tmp_path / "models"
    with registry_lock(registry), pytest.raises(DataError, match="is locked by another process"):
        with registry_lock(registry, timeout=0.2):
            pass


# --- by hand: promote, roll back, list ---------------------------------------------------------


def test_promote_by_hand_and_roll_back(tmp_path: Path) -> None:
    registry = tmp_path / "models"
    first = _promote_new(registry, _bundle(tmp_path / "a", seed=1))
    second = _promote_new(registry, _bundle(tmp_path / "b", seed=2))

    back = rollback(registry, NOW)
    assert (back.version, back.previous, back.reason) == (first.version, second.version, f"rollback from {second.version}")
    assert resolve_model(registry).version == first.version
    again = promote(registry, second.version, "fixed upstream", NOW)
    assert (again.version, again.previous, again.reason) == (second.version, first.version, "fixed upstream")
    listing = describe(registry)
    assert f"* {second.version}  input customers.csv, run run-1" in listing and f"  {first.version}  " in listing


def test_unknown_version_and_nothing_to_roll_back_are_named_and_change_nothing(tmp_path: Path) -> None:
    registry = tmp_path / "models"
    only = _promote_new(registry, _bundle(tmp_path / "a"))
    before = (registry / CURRENT_FILE).read_bytes()

    with pytest.raises(ModelBundleError, match=f"has no version 'nope' \\(latest: {only.version}\\)"):
        promote(registry, "nope", "by hand", NOW)
    with pytest.raises(ModelBundleError, match="has no version '../a'"):
        promote(registry, "../a", "by hand", NOW)
    with pytest.raises(ModelBundleError, match="replaced none; there is nothing to roll back to"):
        rollback(registry, NOW)
    assert (registry / CURRENT_FILE).read_bytes() == before
    with pytest.raises(ModelBundleError, match="is not a model registry"):
        rollback(tmp_path / "a", NOW)


def test_a_damaged_version_is_not_promoted(tmp_path: Path) -> None:
    registry = tmp_path / "models"
    first = _promote_new(registry, _bundle(tmp_path / "a", seed=1))
    second = _promote_new(registry, _bundle(tmp_path / "b", seed=2))
    (registry / VERSIONS_DIR / first.version / "weights.npy").write_bytes(b"x")

    with pytest.raises(ModelBundleError, match="checksum of weights.npy"):
        rollback(registry, NOW)
    assert resolve_model(registry).version == second.version


# --- what scoring and training are given -----------------------------------------------------------


def test_model_paths_resolve_to_a_bundle(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "model")
    assert resolve_model(bundle).bundle == bundle.resolve() and resolve_model(bundle).version is None
    (tmp_path / "empty" / VERSIONS_DIR).mkdir(parents=True)
    with pytest.raises(ModelBundleError, match="has no promoted version yet"):
        resolve_model(tmp_path / "empty")
    (tmp_path / "empty" / CURRENT_FILE).write_text("{")
    with pytest.raises(ModelBundleError, match="CURRENT is damaged"):
        resolve_model(tmp_path / "empty")


def test_a_bundle_or_a_folder_of_other_files_is_not_taken_for_a_registry(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "model")
    with pytest.raises(DataError, match="is a model bundle"):
        check_registry_folder(bundle)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    with pytest.raises(DataError, match="holds files but is no model registry"):
        check_registry_folder(tmp_path / "notes")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        check_registry_folder(tmp_path / "file")
    assert check_registry_folder(tmp_path / "new") == (tmp_path / "new").resolve()


def test_the_promotion_is_added_to_the_run_metrics(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text(json.dumps({"n_rows": 3, "promotion": None, "finished_at": NOW}))
    record = PromotionRecord(registry="r", version="v", promoted=False, reason="why", current="u", previous="u")

    record_promotion(tmp_path, record)

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert list(metrics) == ["n_rows", "promotion", "finished_at"]
    assert metrics["promotion"]["promoted"] is False and metrics["promotion"]["reason"] == "why"


def test_a_promoted_version_older_than_asked_is_named_stale(tmp_path: Path) -> None:
    from datetime import datetime, timedelta

    from somseg.registry import promote, register, stale_model

    registry = tmp_path / "models"
    assert stale_model(registry, datetime.fromisoformat(NOW)) is not None  # nothing at all yet
    version = register(registry, _bundle(tmp_path / "a"))
    assert stale_model(registry, datetime.fromisoformat(NOW)) == "nothing is promoted yet"
    promote(registry, version, "test", NOW)

    trained = datetime.fromisoformat(NOW)
    assert stale_model(registry, trained - timedelta(hours=1)) is None
    assert stale_model(registry, trained) is None
    why = stale_model(registry, trained + timedelta(seconds=1))
    assert why is not None and f"the promoted version {version} was trained at {trained.isoformat()}" in why

    (registry / "versions" / version / "provenance.json").write_text("{}")  # damaged: no training time
    assert "does not record when it was trained" in stale_model(registry, trained)
