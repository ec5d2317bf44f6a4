"""Names of the files in a run folder, shared by the writers and the readers."""

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
