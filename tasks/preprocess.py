"""Cleaning: training-set median imputation and standardisation."""

from dataclasses import dataclass
from pathlib import Path

from prefect import task

from somseg.cleaning import FeatureCleaner
from somseg.config import FeatureSpec
from somseg.io import check_ranges, read_frame, write_json, write_npy
from tasks.caching import CONTENT_CACHE, stage_dir, writing

MATRIX_FILE = "X.npy"
CLEANER_FILE = "cleaner.json"


@dataclass(frozen=True)
class CleanedData:
    """The standardised training matrix and the fitted cleaning parameters."""

    matrix: Path
    cleaner: Path


@task(name="clean-features", cache_policy=CONTENT_CACHE)
def clean_features(table: Path, features: list[FeatureSpec], work_dir: str) -> CleanedData:
    """Check ranges, impute with training medians, standardise."""
    frame = read_frame(table)
    check_ranges(frame, {f.name: (f.min, f.max) for f in features}, source=f"ingested table {table}")
    cleaner = FeatureCleaner([f.name for f in features])
    matrix = cleaner.fit_transform(frame)
    folder = stage_dir(work_dir, "clean-features", table=table, features=features)
    with writing(folder) as tmp:
        write_npy(tmp / MATRIX_FILE, matrix)
        write_json(tmp / CLEANER_FILE, cleaner.to_dict())
    return CleanedData(matrix=folder / MATRIX_FILE, cleaner=folder / CLEANER_FILE)
