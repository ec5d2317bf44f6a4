"""Segment tasks through .fn(): labels follow profiles, not cluster numbers."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prefect.logging import disable_run_logger

from somseg.config import SegmentationConfig
from somseg.io import write_npy
from somseg.model import SegmentationModel
from tasks.segments import label_segments

CONFIG = SegmentationConfig()


@pytest.fixture(scope="module")
def reference_parquet(reference_table: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    table = tmp_path_factory.mktemp("raw") / "raw.parquet"
    pd.read_csv(reference_table, usecols=[CONFIG.id_column, *CONFIG.feature_names]).to_parquet(table)
    return table


def _labels_after_renumbering(run: Path, table: Path, tmp_path: Path, permutation: list[int]) -> list[str]:
    """Each reference customer's label when cluster i is renumbered permutation[i]."""
    bmu = pd.read_parquet(run / "segments.parquet")["bmu"].to_numpy()
    renumbered = np.asarray(permutation)[SegmentationModel.load(run / "model").neuron_segment]
    folder = tmp_path / "perm-{}".format("".join(map(str, permutation)))
    folder.mkdir()
    write_npy(folder / "neuron_segment.npy", renumbered)
    write_npy(folder / "bmu.npy", bmu)
    with disable_run_logger():
        labelled = label_segments.fn(
            table, folder / "bmu.npy", folder / "neuron_segment.npy", CONFIG.feature_names,
            CONFIG.segments.k, CONFIG.labels, str(tmp_path / "work"),
        )
    return [labelled.labels[s] for s in renumbered[bmu]]


@pytest.mark.reference
@pytest.mark.parametrize("permutation", [[0, 1, 2, 3], [2, 0, 3, 1], [3, 2, 1, 0]])
def test_renumbering_clusters_keeps_every_customers_label(
    reference_run: Path, reference_parquet: Path, tmp_path: Path, permutation: list[int]
) -> None:
    labels = _labels_after_renumbering(reference_run, reference_parquet, tmp_path, permutation)

    expected = pd.read_parquet(reference_run / "segments.parquet")["segment_label"].tolist()
    assert labels == expected
