"""Names of the files in a run folder, shared by the writers and the readers, and the default locations."""

import os
from importlib import resources

# The sample table a command without an input runs on.
SAMPLE_TABLE = str(resources.files("somseg.data") / "customers_sample.csv")


def default_work_dir() -> str:
    """Where artifacts live unless a run says otherwise: ``$SOMSEG_WORK_DIR`` or ``.somseg``."""
    return os.environ.get("SOMSEG_WORK_DIR", ".somseg")


SEGMENTS_FILE = "segments.parquet"
PROFILES_FILE = "profiles.parquet"
METRICS_FILE = "metrics.json"
VALIDATION_FILE = "validation.json"
REJECTED_FILE = "rejected.parquet"
CONFIG_FILE = "config.yaml"
MODEL_DIR = "model"
FAILURE_DIR = "last_failure"
REPORT_FILE = "report.html"
FIGURES_DIR = "figures"

# Columns of segments.parquet with few distinct values: Parquet dictionary-
# encodes only these, rather than trying (and abandoning) it on the IDs and
# distances too.
SEGMENTS_DICTIONARY_COLUMNS = ["bmu", "segment", "segment_label"]
