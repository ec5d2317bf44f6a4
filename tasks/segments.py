"""Segments: macro-clusters of the neurons, their profiles and their names."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from prefect import get_run_logger, task

from somseg.config import LabelsConfig, SegmentsConfig
from somseg.io import read_frame, read_npy, write_json, write_npy, write_parquet
from somseg.labels import SegmentLabeller
from somseg.segments import cluster_neurons, population_stats, profile_segments
from tasks.caching import CONTENT_CACHE, stage_dir, writing

NEURON_SEGMENT_FILE = "neuron_segment.npy"


@task(name="cluster-neurons", cache_policy=CONTENT_CACHE)
def cluster_segments(weights: Path, bmu: Path, segments: SegmentsConfig, work_dir: str) -> Path:
    """Cluster the neurons' weight vectors into macro-segments (SOM-Ward weights them by hits)."""
    codebook = read_npy(weights)
    hits = np.bincount(read_npy(bmu), minlength=codebook.shape[0] * codebook.shape[1])
    neuron_segment = cluster_neurons(codebook, segments, hits=hits)
    folder = stage_dir(work_dir, "cluster-neurons", weights=weights, bmu=bmu, segments=segments)
    with writing(folder) as tmp:
        write_npy(tmp / NEURON_SEGMENT_FILE, neuron_segment)
    return folder / NEURON_SEGMENT_FILE


@dataclass(frozen=True)
class LabelledSegments:
    """Segment profiles (with labels) and the label of each segment."""

    profiles: Path
    labels: dict[int, str]


@task(name="label-segments", cache_policy=CONTENT_CACHE)
def label_segments(
    table: Path, bmu: Path, neuron_segment: Path, features: list[str], k: int, labels: LabelsConfig, work_dir: str
) -> LabelledSegments:
    """Profile each segment over observed raw values and name it by the rules."""
    raw = read_frame(table, features)
    segment = read_npy(neuron_segment)[read_npy(bmu)]
    profiles = profile_segments(raw, segment, features, k)
    labeller = SegmentLabeller(labels.rules, labels.fallback_min_z).fit(profiles, population_stats(raw, features))
    profiles.insert(1, "label", profiles["segment"].map(labeller.labels_))
    profiles.insert(2, "named_by_rule", profiles["segment"].map(lambda s: labeller.rule_of_[s] is not None))
    folder = stage_dir(
        work_dir, "label-segments", table=table, bmu=bmu, neuron_segment=neuron_segment, features=features, k=k, labels=labels
    )
    with writing(folder) as tmp:
        write_parquet(tmp / "profiles.parquet", profiles)
        write_json(tmp / "labels.json", {str(s): name for s, name in labeller.labels_.items()})
    for row in profiles.itertuples():
        get_run_logger().info("segment %d %r: %d customers", row.segment, row.label, row.size)
    return LabelledSegments(profiles=folder / "profiles.parquet", labels=labeller.labels_)
