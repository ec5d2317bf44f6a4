"""Scoring partition by partition: the same rows and figures however the table is partitioned."""

import numpy as np
import pandas as pd
import pytest

from somseg import kernels, scoring
from somseg.cleaning import CleaningFit, FeatureCleaner
from somseg.config import FeatureSpec, SegmentationConfig
from somseg.model import SegmentationModel
from somseg.results import TrainingRecord
from somseg.scoring import score_columns, score_frame
from somseg.stats import combine, fit_in_memory


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"ID": np.arange(500), "a": rng.normal(size=500), "b": rng.normal(size=500)})
    frame.loc[::7, "b"] = np.nan
    return frame


@pytest.fixture
def model(frame: pd.DataFrame) -> SegmentationModel:
    rng = np.random.default_rng(1)
    learner = CleaningFit(["a", "b"])
    fit_in_memory(learner, frame[["a", "b"]].to_numpy(copy=True))
    return SegmentationModel(
        id_column="ID",
        features=[FeatureSpec(name="a"), FeatureSpec(name="b")],
        cleaner=FeatureCleaner(["a", "b"]).fit(frame),
        weights=rng.normal(size=(3, 4, 2)),
        neuron_segment=np.arange(12) % 3,
        labels={0: "x", 1: "y", 2: "z"},
        outlier_threshold=1.0,
        suite={"name": "s", "expectations": []},
        training=TrainingRecord(
            n_rows=500, quantization_error=0.5, topographic_error=0.1, segment_shares=[0.3, 0.3, 0.4],
            feature_reference=learner.result().feature_reference,
        ),
        config=SegmentationConfig().model_dump(mode="json"),
    )


def test_partitioning_changes_neither_rows_nor_figures(model: SegmentationModel, frame: pd.DataFrame) -> None:
    whole_rows, whole = score_frame(model, frame)
    parts = [score_frame(model, frame.iloc[start : start + 37]) for start in range(0, len(frame), 37)]

    pd.testing.assert_frame_equal(pd.concat([rows for rows, _ in parts], ignore_index=True), whole_rows)
    a, b = whole.figures(model), combine([summary for _, summary in parts]).figures(model)
    assert a.quantization_error == pytest.approx(b.quantization_error, rel=1e-12)
    assert a.topographic_error == b.topographic_error
    assert a.feature_psi == pytest.approx(b.feature_psi)
    assert [s.count for s in a.segments] == [s.count for s in b.segments]


@pytest.mark.parametrize("n_rows", [500, 493])  # 493: a one-row tail after the last whole block
def test_scoring_a_block_at_a_time_gives_the_rows_and_sums_of_one_pass(
    monkeypatch, model: SegmentationModel, frame: pd.DataFrame, n_rows: int
) -> None:
    frame = frame.iloc[:n_rows]
    raw = frame[["a", "b"]].to_numpy(copy=True)
    one_pass_rows, one_pass = score_frame(model, frame)  # one block: 500 rows are fewer than a block holds
    # Chunks of 4 rows and blocks of 3 chunks: 500 rows go through 42 blocks of one buffer.
    monkeypatch.setattr(kernels, "default_chunk_rows", lambda n_neurons: 4)
    monkeypatch.setattr(scoring, "_BLOCK_ROWS", 12)
    blocked_rows, blocked = score_columns(model, frame["ID"], [raw[:, 0], raw[:, 1]])

    pd.testing.assert_frame_equal(blocked_rows, one_pass_rows)
    assert blocked.n_rows == n_rows and blocked.distance_sum == one_pass.distance_sum
    assert blocked.topographic_errors_8 == one_pass.topographic_errors_8
    for name in ("a", "b"):
        np.testing.assert_array_equal(blocked.feature_counts[name], one_pass.feature_counts[name])
    np.testing.assert_array_equal(raw, frame[["a", "b"]].to_numpy())  # the caller's arrays are only read
    with pytest.raises(ValueError, match="1 feature columns of lengths"):
        score_columns(model, frame["ID"], [raw[:, 0]])


def test_no_rows_and_one_row_score_like_the_rest(model: SegmentationModel, frame: pd.DataFrame) -> None:
    whole_rows, _ = score_frame(model, frame)
    empty_rows, empty = score_frame(model, frame.iloc[:0])
    assert empty.n_rows == 0 and list(empty_rows.columns) == list(whole_rows.columns)
    assert (empty_rows.dtypes == whole_rows.dtypes).all()
    pd.testing.assert_frame_equal(score_frame(model, frame.iloc[:1])[0], whole_rows.iloc[:1])


def test_scoring_the_training_data_shows_no_feature_drift(model: SegmentationModel, frame: pd.DataFrame) -> None:
    figures = score_frame(model, frame)[1].figures(model)

    assert figures.feature_psi == pytest.approx({"a": 0.0, "b": 0.0}, abs=1e-12)
    assert figures.n_rows == 500
    assert 0 <= figures.outlier_share <= 1


def test_an_empty_partition_gives_rows_of_the_same_schema_and_adds_nothing(
    model: SegmentationModel, frame: pd.DataFrame
) -> None:
    rows, summary = score_frame(model, frame.iloc[:0])

    assert list(rows.columns) == ["ID", "bmu", "segment", "segment_label", "quantization_error", "is_outlier"]
    assert len(rows) == 0 and summary.n_rows == 0
    full = score_frame(model, frame)[1]
    assert (full + summary).figures(model) == full.figures(model)
