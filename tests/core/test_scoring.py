"""Chunked scoring: the same rows and figures whatever the chunk size."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from somseg.cleaning import FeatureCleaner
from somseg.config import SegmentationConfig
from somseg.drift import feature_reference
from somseg.model import SegmentationModel
from somseg.scoring import score_table


@pytest.fixture
def model_and_table(tmp_path: Path) -> tuple[SegmentationModel, Path]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"ID": np.arange(500), "a": rng.normal(size=500), "b": rng.normal(size=500)})
    frame.loc[::7, "b"] = np.nan
    cleaner = FeatureCleaner(["a", "b"]).fit(frame)
    model = SegmentationModel(
        id_column="ID",
        features=[{"name": "a"}, {"name": "b"}],
        cleaner=cleaner,
        weights=rng.normal(size=(3, 4, 2)),
        neuron_segment=np.arange(12) % 3,
        labels={0: "x", 1: "y", 2: "z"},
        outlier_threshold=1.0,
        suite={"name": "s", "expectations": []},
        training={"segment_shares": [0.3, 0.3, 0.4], "feature_reference": feature_reference(frame, ["a", "b"])},
        config=SegmentationConfig().model_dump(mode="json"),
    )
    table = tmp_path / "t.parquet"
    frame.to_parquet(table)
    return model, table


def test_chunk_size_changes_neither_rows_nor_figures(model_and_table: tuple[SegmentationModel, Path], tmp_path: Path) -> None:
    model, table = model_and_table

    whole = score_table(model, table, tmp_path / "whole.parquet", chunk_rows=10_000)
    chunked = score_table(model, table, tmp_path / "chunked.parquet", chunk_rows=37)

    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "whole.parquet"), pd.read_parquet(tmp_path / "chunked.parquet"))
    a, b = whole.figures(model), chunked.figures(model)
    assert a["quantization_error"] == pytest.approx(b["quantization_error"], rel=1e-12)
    assert a["topographic_error"] == b["topographic_error"]
    assert a["feature_psi"] == pytest.approx(b["feature_psi"])
    assert [s["count"] for s in a["segments"]] == [s["count"] for s in b["segments"]]


def test_scoring_the_training_data_shows_no_feature_drift(model_and_table: tuple[SegmentationModel, Path], tmp_path: Path) -> None:
    model, table = model_and_table

    figures = score_table(model, table, tmp_path / "s.parquet", chunk_rows=64).figures(model)

    assert figures["feature_psi"] == pytest.approx({"a": 0.0, "b": 0.0}, abs=1e-12)
    assert figures["n_rows"] == 500
    assert 0 <= figures["outlier_share"] <= 1


def test_an_empty_table_gives_an_empty_output_of_the_same_schema(model_and_table: tuple[SegmentationModel, Path], tmp_path: Path) -> None:
    model, table = model_and_table
    empty = tmp_path / "empty.parquet"
    pd.read_parquet(table).iloc[:0].to_parquet(empty)

    score_table(model, empty, tmp_path / "out.parquet")

    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == ["ID", "bmu", "segment", "segment_label", "quantization_error", "is_outlier"]
    assert len(out) == 0
