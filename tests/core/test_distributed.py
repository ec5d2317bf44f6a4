"""somseg.distributed: the Dask algorithms give the local engine's results."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")

from somseg import distributed as D  # noqa: E402
from somseg.batch_som import pca_init  # noqa: E402
from somseg.cleaning import FeatureCleaner  # noqa: E402
from somseg.config import FeatureSpec, SegmentsConfig, SomConfig  # noqa: E402
from somseg.drift import feature_reference  # noqa: E402
from somseg.errors import DataError  # noqa: E402
from somseg.io import read_table  # noqa: E402
from somseg.metrics import match_units, outlier_threshold, topographic_errors  # noqa: E402
from somseg.scoring import ScoreSummary  # noqa: E402
from somseg.segments import cluster_neurons, population_stats, profile_segments  # noqa: E402
from somseg.som import build_engine  # noqa: E402

FEATURES = ["Age", "Work_Experience", "Family_Size"]
SPECS = [
    FeatureSpec(name="Age", min=18, max=100),
    FeatureSpec(name="Work_Experience", min=0, max=60),
    FeatureSpec(name="Family_Size", min=1, max=20),
]
# Partial sums are added in another order than the local engine's: figures
# agree to rounding. Observed differences are ~1e-15; 1e-9 is the stated bound.
TOLERANCE = 1e-9


def write_dataset(frame: pd.DataFrame, folder: Path, rows_per_file: int, row_group: int) -> Path:
    folder.mkdir()
    for index, start in enumerate(range(0, len(frame), rows_per_file)):
        frame.iloc[start : start + rows_per_file].to_parquet(
            folder / f"part-{index:03d}.parquet", index=False, row_group_size=row_group
        )
    return folder


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as local,
        Client(local) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def reference(
    reference_table: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[pd.DataFrame, list[D.Partition]]:
    frame = read_table(reference_table, "ID", FEATURES)
    folder = write_dataset(frame, tmp_path_factory.mktemp("reference") / "dataset", 2_000, 700)
    return frame, D.plan_partitions(D.dataset_files(folder), ["ID", *FEATURES], 1_500)


@pytest.mark.parametrize("init", ["pca", "random"])
def test_training_on_a_local_cluster_matches_the_local_batch_engine(cluster, reference, init: str) -> None:
    frame, partitions = reference
    som = SomConfig(engine="batch", init=init)
    statistics = D.fit_statistics(partitions, "ID", SPECS)
    local_cleaner = FeatureCleaner(FEATURES).fit(frame)
    X = local_cleaner.transform(frame)
    np.testing.assert_array_equal(statistics.cleaner.medians_, local_cleaner.medians_)
    np.testing.assert_allclose(statistics.cleaner.mean_, local_cleaner.mean_, rtol=1e-14)
    np.testing.assert_allclose(statistics.cleaner.scale_, local_cleaner.scale_, rtol=1e-14)
    assert statistics.feature_reference == feature_reference(frame, FEATURES)

    weights = D.train_batch_som(partitions, "ID", statistics.cleaner, som)
    local_weights = build_engine(som).fit(X).weights_
    figures = D.assess_map(partitions, "ID", statistics.cleaner, weights, 95)
    match = match_units(X, local_weights)
    if init == "random":
        # Neurons start on data rows; on integer data many rows are exactly
        # equidistant from two of them, and a 1-ulp difference in the scaler
        # (StandardScaler sums in another order) breaks those ties the other
        # way. The map is as good, not the same: only the quality is compared.
        assert figures.quantization_error == pytest.approx(match.distance.mean(), abs=0.02)
        return
    np.testing.assert_allclose(weights, local_weights, rtol=0, atol=TOLERANCE)
    assert figures.quantization_error == pytest.approx(match.distance.mean(), abs=TOLERANCE)
    assert figures.topographic_error == pytest.approx(topographic_errors(match, 8, 8).mean(), abs=TOLERANCE)
    assert figures.topographic_error_4 == pytest.approx(topographic_errors(match, 8, 4).mean(), abs=TOLERANCE)
    assert figures.outlier_threshold == pytest.approx(outlier_threshold(match.distance, 95), abs=TOLERANCE)

    neuron_segment = cluster_neurons(local_weights, SegmentsConfig())
    local_profiles = profile_segments(frame, neuron_segment[match.bmu], FEATURES, 4)
    profiles = D.profile_segments(figures, neuron_segment, FEATURES, 4)
    assert profiles["size"].tolist() == local_profiles["size"].tolist()
    pd.testing.assert_frame_equal(profiles, local_profiles, rtol=1e-12)
    pd.testing.assert_frame_equal(D.population_stats(figures, FEATURES), population_stats(frame, FEATURES), rtol=1e-12)


@pytest.mark.parametrize("distinct_limit", [1_000_000, 50])
def test_order_statistics_are_numpys_exact_quantiles(monkeypatch, distinct_limit: int) -> None:
    # 50 distinct values per column forces the histogram refinement path.
    monkeypatch.setattr(D, "_MAX_DISTINCT", distinct_limit)
    monkeypatch.setattr(D, "_GATHER_LIMIT", 40)
    rng = np.random.default_rng(7)
    values = np.column_stack([rng.normal(size=3_001), rng.integers(0, 9, size=3_001).astype(float)])
    values[rng.random(3_001) < 0.1, 0] = np.nan
    parts = [D.delayed(np.asarray)(chunk) for chunk in np.array_split(values, 7)]
    quantiles = np.array([0.05, 0.1, 0.5, 0.95, 0.999])

    def ranks_of(n_observed: np.ndarray) -> list[np.ndarray]:
        return [np.concatenate([D.median_ranks(int(n)), *D.quantile_ranks(int(n), quantiles)[:2]]) for n in n_observed]

    n_observed, found = D.order_statistics(parts, ranks_of)
    for column in range(2):
        observed = values[:, column][~np.isnan(values[:, column])]
        assert n_observed[column] == len(observed)
        assert D.median_from(found[column][:2]) == np.median(observed)
        lower, upper = found[column][2:7], found[column][7:]
        gamma = D.quantile_ranks(len(observed), quantiles)[2]
        np.testing.assert_array_equal(D.quantile_from(lower, upper, gamma), np.quantile(observed, quantiles))


def test_pca_grid_is_batch_soms_pca_init() -> None:
    X = np.random.default_rng(3).normal(size=(500, 3)) @ np.array([[2.0, 0.5, 0], [0, 1.0, 0.3], [0, 0, 0.2]])
    mean, centred = X.mean(axis=0), X - X.mean(axis=0)
    np.testing.assert_allclose(D.pca_grid(mean, centred.T @ centred / len(X), 8, 6), pca_init(X, 8, 6), atol=1e-12)


def test_plan_partitions_keeps_row_groups_whole_and_counts_rows(tmp_path: Path) -> None:
    frame = pd.DataFrame({"ID": np.arange(2_500), "Age": 30.0, "Work_Experience": 1.0, "Family_Size": 2.0})
    folder = write_dataset(frame, tmp_path / "dataset", 1_000, 300)
    (folder / "_SUCCESS").write_text("")
    partitions = D.plan_partitions(D.dataset_files(folder), ["ID", *FEATURES], 700)
    assert [p.n_rows for p in partitions] == [600, 400, 600, 400, 500]
    assert [p.first_row for p in partitions] == [0, 600, 1000, 1600, 2000]
    assert D.read_partition(partitions[1], "ID", FEATURES)["ID"].tolist() == list(range(600, 1000))


def test_missing_column_and_empty_source_are_data_errors(tmp_path: Path) -> None:
    pd.DataFrame({"ID": [1], "Age": [30.0]}).to_parquet(tmp_path / "a.parquet")
    with pytest.raises(DataError, match="lacks column"):
        D.plan_partitions([tmp_path / "a.parquet"], ["ID", *FEATURES], 10)
    with pytest.raises(DataError, match="no Parquet files"):
        D.dataset_files(tmp_path / "nothing-*.parquet")


def test_duplicate_ids_are_counted_across_partitions(tmp_path: Path) -> None:
    frame = pd.DataFrame({"ID": [1, 2, 3, 4, 5, 6], "Age": 30.0, "Work_Experience": 1.0, "Family_Size": 2.0})
    frame.loc[5, "ID"] = 1  # the same id in the first and the last file
    folder = write_dataset(frame, tmp_path / "dataset", 2, 2)
    n_rows, sample = D.count_duplicate_ids(D.dataset_files(folder), "ID", partitions=2)
    assert (n_rows, sample) == (2, [1])


def test_out_of_range_values_stop_cleaning(tmp_path: Path) -> None:
    frame = pd.DataFrame({"ID": range(4), "Age": [20.0, 30.0, 140.0, 50.0], "Work_Experience": 1.0, "Family_Size": 2.0})
    folder = write_dataset(frame, tmp_path / "dataset", 2, 2)
    partitions = D.plan_partitions(D.dataset_files(folder), ["ID", *FEATURES], 10)
    with pytest.raises(DataError, match="'Age': 1 row"):
        D.fit_statistics(partitions, "ID", SPECS)


def test_merged_summaries_add_every_total() -> None:
    a = ScoreSummary(
        k=2,
        n_rows=3,
        distance_sum=1.5,
        outliers=1,
        segment_counts=np.array([2, 1]),
        feature_counts={"Age": np.array([1.0, 2.0])},
    )
    b = ScoreSummary(
        k=2,
        n_rows=2,
        distance_sum=0.5,
        topographic_errors_8=1,
        segment_counts=np.array([0, 2]),
        feature_counts={"Age": np.array([1.0, 0.0])},
    )
    merged = D.merge_summaries(a, b)
    assert (merged.n_rows, merged.distance_sum, merged.outliers, merged.topographic_errors_8) == (5, 2.0, 1, 1)
    assert merged.segment_counts.tolist() == [2, 3] and merged.feature_counts["Age"].tolist() == [2.0, 2.0]
