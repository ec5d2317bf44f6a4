"""Scoring new customers with a saved model, in bounded memory.

A table is scored chunk by chunk: each chunk is imputed with the *training*
medians, scaled with the *training* scaler, matched to the map, and written
out before the next one is read. Figures over the whole table (quantization
and topographic error, outlier share, segment mix) are sums of per-chunk
partial results, so they are exact whatever the chunk size.
"""

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from somseg.drift import bin_counts, population_stability_index
from somseg.io import ARROW_SUFFIX, atomic_path, mapped_arrow_table
from somseg.layout import SEGMENTS_DICTIONARY_COLUMNS
from somseg.metrics import topographic_errors
from somseg.model import SegmentationModel

DEFAULT_CHUNK_ROWS = 1_000_000


@dataclass
class ScoreSummary:
    """Running totals over the scored chunks."""

    k: int
    n_rows: int = 0
    distance_sum: float = 0.0
    topographic_errors_8: int = 0
    topographic_errors_4: int = 0
    outliers: int = 0
    segment_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    feature_counts: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.segment_counts) == 0:
            self.segment_counts = np.zeros(self.k, dtype=np.int64)

    def add_features(self, frame: pd.DataFrame, reference: dict[str, dict[str, list[float]]]) -> None:
        """Fold one chunk's per-feature bin counts (on the training bins) into the totals."""
        for name, ref in reference.items():
            counts = bin_counts(frame[name].to_numpy(dtype=float), ref["edges"])
            self.feature_counts[name] = self.feature_counts.get(name, 0) + counts

    def add(self, scored: pd.DataFrame, te8: np.ndarray, te4: np.ndarray) -> None:
        """Fold one scored chunk into the totals."""
        self.n_rows += len(scored)
        self.distance_sum += float(scored["quantization_error"].sum())
        self.topographic_errors_8 += int(te8.sum())
        self.topographic_errors_4 += int(te4.sum())
        self.outliers += int(scored["is_outlier"].sum())
        self.segment_counts += np.bincount(scored["segment"].to_numpy(), minlength=self.k)

    def figures(self, model: SegmentationModel) -> dict:
        """The figures of a scoring run's ``metrics.json``."""
        n = max(self.n_rows, 1)
        shares = self.segment_counts / n
        trained = np.asarray(model.training.get("segment_shares", [np.nan] * self.k), dtype=float)
        return {
            "n_rows": self.n_rows,
            "quantization_error": self.distance_sum / n,
            "topographic_error": self.topographic_errors_8 / n,
            "topographic_error_adjacency": "8 neighbours (diagonals adjacent, as MiniSom)",
            "topographic_error_4": self.topographic_errors_4 / n,
            "outlier_share": self.outliers / n,
            "outlier_threshold": model.outlier_threshold,
            "segments": [
                {
                    "segment": s,
                    "label": model.labels[s],
                    "count": int(self.segment_counts[s]),
                    "share": float(shares[s]),
                    "training_share": float(trained[s]),
                }
                for s in range(self.k)
            ],
            "segment_psi": population_stability_index(trained, shares),
            "feature_psi": {
                name: population_stability_index(ref["shares"], self.feature_counts.get(name, 0) / n)
                for name, ref in model.training.get("feature_reference", {}).items()
            },
        }


def score_frame(model: SegmentationModel, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Segments of one chunk, and its per-row topographic error flags (8 and 4 neighbours)."""
    X = model.cleaner.transform(frame)
    match = model.match(X)
    scored = model.assign(frame[model.id_column], match.bmu, match.distance)
    cols = model.grid_shape[1]
    return scored, topographic_errors(match, cols, 8), topographic_errors(match, cols, 4)


def iter_chunks(path: str | Path, columns: list[str], chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """Read an Arrow IPC (``.arrow``) or Parquet file ``chunk_rows`` rows at a time, only ``columns``."""
    if Path(path).suffix == ARROW_SUFFIX:
        # A chunk's pages are read when it is converted, not before.
        with mapped_arrow_table(path, columns) as table:
            for start in range(0, table.num_rows, chunk_rows):
                yield table.slice(start, chunk_rows).to_pandas()
        return
    source = pq.ParquetFile(path)
    for batch in source.iter_batches(batch_size=chunk_rows, columns=columns):
        yield batch.to_pandas()


def score_table(
    model: SegmentationModel, source: str | Path, destination: str | Path, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> ScoreSummary:
    """Score a table chunk by chunk into ``destination`` (written atomically).

    Parameters
    ----------
    model : SegmentationModel
    source : path
        Arrow IPC or Parquet table with the model's id column and features.
    destination : path
        Parquet file of the same schema as the training run's ``segments.parquet``.
    chunk_rows : int
        Rows held in memory at once.

    Returns
    -------
    ScoreSummary
    """
    summary = ScoreSummary(k=len(model.labels))
    columns = [model.id_column, *model.feature_names]
    reference = model.training.get("feature_reference", {})
    writer = None
    with atomic_path(destination) as tmp:
        try:
            # Parquet encoding releases the GIL, so a chunk is written on a
            # second thread while the next one is scored; at most one write
            # is pending, which bounds memory to two chunks.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="somseg-parquet") as pool:
                pending: Future[None] | None = None
                for chunk in iter_chunks(source, columns, chunk_rows):
                    scored, te8, te4 = score_frame(model, chunk)
                    summary.add(scored, te8, te4)
                    summary.add_features(chunk, reference)
                    table = pa.Table.from_pandas(scored, preserve_index=False)
                    writer = writer or pq.ParquetWriter(tmp, table.schema, use_dictionary=SEGMENTS_DICTIONARY_COLUMNS)
                    if pending is not None:
                        pending.result()
                    pending = pool.submit(writer.write_table, table)
                if pending is not None:
                    pending.result()
            if writer is None:
                _empty_segments(model).to_parquet(tmp, index=False)
        finally:
            if writer is not None:
                writer.close()
    return summary


def _empty_segments(model: SegmentationModel) -> pd.DataFrame:
    return model.assign(pd.Series([], dtype="int64"), np.empty(0, dtype=np.int64), np.empty(0))
