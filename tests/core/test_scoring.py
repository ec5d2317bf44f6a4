"""Scoring partition by partition: the same rows and figures however the table is partitioned."""

import numpy as np
import pandas as pd
import pytest

from somseg.cleaning import CleaningFit, FeatureCleaner
from somseg.config import FeatureSpec, SegmentationConfig
from somseg.model import SegmentationModel
from somseg.results import TrainingRecord
from somseg.scoring import score_frame
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
