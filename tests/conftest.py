"""Shared fixtures: the Prefect test harness, isolated storage, the reference table, a fast config."""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_TABLE = REPO_ROOT.parent / "shared" / "data" / "customers_train.csv"
SAMPLE_TABLE = REPO_ROOT / "data" / "customers_sample.csv"
REFERENCE_CONFIG = REPO_ROOT / "configs" / "reference.yaml"


@pytest.fixture(scope="session", autouse=True)
def _isolated_prefect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # The harness does not isolate result storage: without this, cached
    # results of earlier runs (or of a developer's own runs) would be hit.
    home = tmp_path_factory.mktemp("prefect-home")
    os.environ["PREFECT_LOCAL_STORAGE_PATH"] = str(home / "storage")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
    yield


@pytest.fixture(scope="session")
def prefect_harness(_isolated_prefect: None) -> Iterator[None]:
    """A temporary Prefect API for the tests marked ``flow`` (started once per session)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def reference_table() -> Path:
    if not REFERENCE_TABLE.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"reference table missing at {REFERENCE_TABLE}; CI must provide ../shared/data")
        pytest.skip(f"reference table not found at {REFERENCE_TABLE}")
    return REFERENCE_TABLE


@pytest.fixture(scope="session")
def sample_table() -> Path:
    return SAMPLE_TABLE


@pytest.fixture(scope="session")
def fast_config() -> "object":
    """A small fast config for wiring tests: batch engine, a 4x4 map, few epochs, no bootstrap.

    A 4x4 map quantizes the sample more coarsely than the reference's 8x8
    (QE about 0.63), so its gates are wider; the gate tests set their own.
    """
    from somseg.config import EvaluationConfig, FeatureSpec, GateConfig, SegmentationConfig, SomConfig

    return SegmentationConfig(
        # The sample's features with their valid ranges, so that the derived suite checks them.
        features=[FeatureSpec(name="Age", min=18, max=100), FeatureSpec(name="Work_Experience", min=0, max=60),
                  FeatureSpec(name="Family_Size", min=1, max=20)],
        som=SomConfig(engine="batch", init="pca", rows=4, cols=4, epochs=5, sigma=1.5),
        gates=GateConfig(max_quantization_error=1.0, max_topographic_error=0.5),
        evaluation=EvaluationConfig(bootstrap_resamples=0, k_max=5, silhouette_sample=1000, stability_rows=2000),
    )


@pytest.fixture(scope="session")
def reference_config() -> "object":
    """The reference recipe, configs/reference.yaml."""
    from somseg.config import load_config

    return load_config(REFERENCE_CONFIG)


@pytest.fixture(scope="session")
def reference_run(
    prefect_harness: None, reference_table: Path, reference_config: "object", tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """One training run of the reference recipe on the reference table, shared by the tests that read it."""
    from somseg.flows.train import train_segments_flow

    base = tmp_path_factory.mktemp("reference")
    return Path(train_segments_flow(str(reference_table), str(base / "run"), reference_config, work_dir=str(base / "work")))


def profiles_of(raw: "pd.DataFrame", segment: "np.ndarray", features: list[str], k: int) -> "pd.DataFrame":
    """Segment profiles of rows whose segment is ``segment``, as the pipeline computes them.

    Each segment stands for one neuron: its rows' statistics are what the
    assessment pass gathers per neuron, and the profile merges them.
    """
    import numpy as np

    from somseg.results import MapFigures
    from somseg.segments import profile_segments
    from somseg.stats import Moments

    values = raw[list(features)].to_numpy(dtype=float)
    segment = np.asarray(segment, dtype=np.int64)
    missing = np.stack([np.bincount(segment, np.isnan(values[:, c]), k) for c in range(len(features))], axis=1)
    nan = float("nan")
    figures = MapFigures(
        n_rows=len(raw), quantization_error=nan, topographic_error=nan, topographic_error_4=nan,
        explained_variance=nan, kaski_lagus_error=nan, outlier_threshold=nan, outlier_percentile=95.0,
        hits=np.bincount(segment, minlength=k), neuron_moments=Moments.of(values, segment, k),
        neuron_missing=missing.astype(np.int64),
    )
    return profile_segments(figures, np.arange(k), features, k)


@pytest.fixture(scope="session")
def profiles() -> "object":
    """:func:`profiles_of`, for tests that build profiles from raw rows."""
    return profiles_of
