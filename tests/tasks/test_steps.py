"""Steps called through .fn() on small inputs: each loads its inputs, makes one core call, saves its outputs."""

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prefect.logging import disable_run_logger

from somseg.config import GateConfig, load_config
from somseg.dataset import plan_input
from somseg.errors import DataError, DataQualityError, QualityGateError
from somseg.model import SegmentationModel
from somseg.quality import DuplicateCount, partition_suite
from somseg.stats import combine
from somseg.tasks.catalog import NeuronSegments, Store, writing
from somseg.tasks.expectations import load_suite

CONFIG = load_config(Path(__file__).resolve().parents[2] / "configs" / "reference.yaml")  # the reference recipe
COLUMNS = [CONFIG.id_column, *CONFIG.feature_names]


@pytest.fixture(autouse=True)
def _no_run_logger():
    with disable_run_logger():
        yield


def _ingest(source: Path, store: Store, partition_rows: int = 1_000_000, first_pass: Any = None, screen: Any = None) -> list:
    from somseg.tasks.ingest import ingest_partition

    parts = plan_input(source, COLUMNS, partition_rows)
    return [
        t
        for part in parts
        for t in ingest_partition.fn(store, part, CONFIG.id_column, CONFIG.feature_names, partition_rows, first_pass,
                                     None, screen=screen)
    ]


def test_ingest_keeps_only_the_id_and_the_features(sample_table: Path, tmp_path: Path) -> None:
    (part,) = _ingest(sample_table, Store.at(tmp_path))

    table = part.load()
    assert list(table.columns) == COLUMNS and table["ID"].dtype == "int64"
    assert len(table) == part.n_rows == len(pd.read_csv(sample_table))


def test_ingest_reads_a_semicolon_csv_with_bom_as_the_same_table(sample_table: Path, tmp_path: Path) -> None:
    source = tmp_path / "excel-export.csv"
    pd.read_csv(sample_table).to_csv(source, sep=";", index=False, encoding="utf-8-sig")

    parts = _ingest(source, Store.at(tmp_path / "w1"), partition_rows=2_000)

    assert [p.n_rows for p in parts] == [2_000, 2_000, 1_000]
    whole = pd.concat([p.load() for p in parts], ignore_index=True)
    pd.testing.assert_frame_equal(whole, _ingest(sample_table, Store.at(tmp_path / "w2"))[0].load())


def _validate(parts: list, store: Store) -> dict:
    from somseg.tasks.quality import combine_validation, count_bucket, validate_partition

    suite = load_suite("customers")
    validated = [
        validate_partition.fn(store, part, partition_suite(suite, first=i == 0), ["ID"], len(parts))
        for i, part in enumerate(parts)
    ]
    counts = [count_bucket.fn(validated, "ID", b) for b in range(len(parts))]
    rows = [DuplicateCount(*v.counts["ID"], 0, ()) for v in validated]
    document = combine_validation.fn(store, suite, validated, {"ID": combine(rows + counts)}, sum(p.n_rows for p in parts))
    return document.load()


def test_duplicates_across_partitions_fail_uniqueness(sample_table: Path, tmp_path: Path) -> None:
    from somseg.tasks.quality import enforce_expectations

    frame = pd.read_csv(sample_table)
    frame.loc[4_990:, "ID"] = frame.loc[:9, "ID"].to_numpy()  # the last partition repeats the first one's IDs
    broken = tmp_path / "dup.csv"
    frame.to_csv(broken, index=False)
    store = Store.at(tmp_path / "work")

    good = _validate(_ingest(sample_table, store, 2_000), store)
    bad = _validate(_ingest(broken, store, 2_000), store)

    assert good["success"] and good["meta"]["partitions"] == 3
    unique = next(r for r in bad["results"] if r["expectation_config"]["type"] == "expect_column_values_to_be_unique")
    assert not unique["success"] and unique["result"]["unexpected_count"] == 20
    with pytest.raises(DataQualityError, match=r"expect_column_values_to_be_unique on column 'ID'.*20 unexpected"):
        enforce_expectations.fn(bad, str(broken), "customers")


def test_cleaning_refuses_values_outside_the_configured_range_naming_the_input(sample_table: Path, tmp_path: Path) -> None:
    from somseg.tasks.stages import cleaning_learner

    frame = pd.read_csv(sample_table)
    frame.loc[:4, "Family_Size"] = 25
    source = tmp_path / "big-families.csv"
    frame.to_csv(source, index=False)
    learner = cleaning_learner(CONFIG.features, str(source))
    parts = _ingest(source, Store.at(tmp_path), 3_000, first_pass=learner.request())

    with pytest.raises(DataError, match=rf"input {source}: column 'Family_Size': 5 row\(s\) outside the valid range \[1.0, 20.0\]"):
        learner.update(combine([part.profile for part in parts]))


def _with_invalid_rows(sample_table: Path, tmp_path: Path) -> Path:
    """The sample with 30 invalid rows spread over its partitions of 2,000: ages of 150, text, a family of 0."""
    frame = pd.read_csv(sample_table).astype({"Age": object})
    frame.loc[[0, 2_500, 4_999], "Age"] = 150
    frame.loc[range(10, 30), "Age"] = "unknown"
    frame.loc[range(3_000, 3_007), "Family_Size"] = 0
    frame.loc[3_000, "Age"] = 150  # one row, two invalid values
    source = tmp_path / "invalid.csv"
    frame.to_csv(source, index=False)
    return source


def test_ingest_drops_invalid_rows_per_partition_and_keeps_their_records(sample_table: Path, tmp_path: Path) -> None:
    from somseg.tasks.stages import Table, cleaning_learner, invalid_row_screen

    source = _with_invalid_rows(sample_table, tmp_path)
    learner = cleaning_learner(CONFIG.features, str(source))
    screen = invalid_row_screen(CONFIG.features, {}, "drop")

    parts = _ingest(source, Store.at(tmp_path / "work"), 2_000, first_pass=learner.request(), screen=screen)

    assert [p.n_rows for p in parts] == [2_000 - 21, 2_000 - 8, 1_000 - 1]
    assert sum(len(p.load()) for p in parts) == 5_000 - 30
    total = combine([p.invalid for p in parts])
    assert (total.n_rows, total.n_invalid, total.by_column()) == (5_000, 30, {"Age": 24, "Family_Size": 7})
    rejected = pd.concat([pd.read_feather(path) for path in Table(str(source), tuple(parts)).rejected], ignore_index=True)
    assert len(rejected) == 31 and set(rejected["reason"]) == {"not a number", "above max 100", "below min 1"}
    assert rejected.loc[rejected["value"] == "unknown", "id"].tolist() == pd.read_csv(sample_table)["ID"][10:30].tolist()
    learner.update(combine([p.profile for p in parts]))  # the cleaning's range check: nothing left to refuse


def test_an_ingest_screened_under_another_policy_is_another_step(sample_table: Path, tmp_path: Path) -> None:
    from somseg.tasks.stages import invalid_row_screen

    store = Store.at(tmp_path)
    (fail,) = _ingest(sample_table, store, screen=invalid_row_screen(CONFIG.features, {}, "fail"))
    (drop,) = _ingest(sample_table, store, screen=invalid_row_screen(CONFIG.features, {}, "drop"))

    assert fail.key != drop.key and fail.rejected_path.is_file() and drop.rejected_path.is_file()
    assert (fail.n_rows, fail.invalid.n_invalid, drop.invalid.n_invalid) == (5_000, 0, 0)


def test_invalid_rows_above_the_share_stop_the_run_naming_the_setting(sample_table: Path, tmp_path: Path) -> None:
    from somseg.config import QualityConfig
    from somseg.tasks.ingest import enforce_valid_rows
    from somseg.tasks.stages import invalid_row_screen

    source = _with_invalid_rows(sample_table, tmp_path)
    parts = _ingest(source, Store.at(tmp_path / "work"), 2_000, screen=invalid_row_screen(CONFIG.features, {}, "drop"))
    total = combine([p.invalid for p in parts])

    with pytest.raises(DataError, match=r"30 of 5,000 row\(s\) \(0.60%\) are invalid, above quality.max_invalid_share "
                                         r"0.005: column 'Age': 24 row\(s\) \(20 not a number, 4 above max 100\); "
                                         r"sample values: 150, unknown"):
        enforce_valid_rows.fn(total, QualityConfig(invalid_rows="drop", max_invalid_share=0.005), str(source))
    record = enforce_valid_rows.fn(total, QualityConfig(invalid_rows="drop"), str(source))
    assert (record.rejected_rows, record.share) == (30, 0.006)
    with pytest.raises(DataError, match="set quality.invalid_rows: drop"):
        enforce_valid_rows.fn(total, QualityConfig(), str(source))


@pytest.mark.parametrize(
    ("qe", "te", "message"),
    [
        (0.6, 0.05, r"quantization error 0.6 > max 0.5 \(gates.max_quantization_error\)"),
        (0.4, 0.2, r"topographic error 0.2 > max 0.1 \(gates.max_topographic_error\)"),
    ],
)
def test_the_gate_names_the_value_the_limit_and_the_setting(qe: float, te: float, message: str) -> None:
    from types import SimpleNamespace

    from somseg.tasks.assessment import enforce_gates

    def figures(qe: float, te: float) -> SimpleNamespace:
        return SimpleNamespace(quantization_error=qe, relative_quantization_error=qe / 2, topographic_error=te,
                               explained_variance=0.9)

    gates = GateConfig(max_quantization_error=0.5)
    with pytest.raises(QualityGateError, match=message):
        enforce_gates.fn(figures(qe, te), gates)
    enforce_gates.fn(figures(0.4, 0.05), gates)


@pytest.mark.reference
@pytest.mark.parametrize("permutation", [[0, 1, 2, 3], [2, 0, 3, 1], [3, 2, 1, 0]])
def test_renumbering_clusters_keeps_every_customers_label(
    reference_run: Path, reference_table: Path, tmp_path: Path, permutation: list[int]
) -> None:
    from somseg.assessment import assess_in_memory
    from somseg.cleaning import FeatureCleaner
    from somseg.dataset import read_table
    from somseg.tasks.segments import label_segments

    model = SegmentationModel.load(reference_run / "model")
    raw = read_table(reference_table, CONFIG.id_column, CONFIG.feature_names)
    X = FeatureCleaner(CONFIG.feature_names).fit_transform(raw)
    match, figures, _ = assess_in_memory(X, model.weights, raw[CONFIG.feature_names].to_numpy())
    store = Store.at(tmp_path)
    renumbered = np.asarray(permutation)[model.neuron_segment]
    folder = store.folder("seed", "s" * 64)
    with writing(folder) as tmp:
        np.save(tmp / "neuron_segment.npy", renumbered)

    labelled = label_segments.fn(
        store, figures, NeuronSegments("s" * 64, folder), CONFIG.feature_names, CONFIG.segments.k, CONFIG.labels
    )

    expected = pd.read_parquet(reference_run / "segments.parquet")["segment_label"].tolist()
    assert [labelled.labels[s] for s in renumbered[match.bmu]] == expected
