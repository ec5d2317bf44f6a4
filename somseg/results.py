"""What the steps hand each other and what a run reports: one module that compute and reporting import.

* :class:`MapFigures`: the map measured against every row (arrays included).
* The evaluation's figures (:class:`Evaluation` and its parts).
* :class:`TrainingMetrics` and :class:`ScoringMetrics`: the schemas of a
  run's ``metrics.json``, versioned by :data:`METRICS_SCHEMA_VERSION`.
* :class:`TrainingRecord`: the training figures a model bundle keeps.
* :class:`InvalidRowsRecord`: the invalid rows a run dropped.
* :class:`Provenance`: which training run, input and config made a model.
* :class:`PromotionRecord`: what a training run's promotion in a model
  registry decided, and why.
* :class:`Check` and :class:`DriftVerdict`: a figure against its limit,
  and a scoring run's drift checks (the decisions are in
  :mod:`somseg.gates`).

The JSON schemas write NaN (a figure that is undefined, such as the
topographic error of a one-neuron map) as ``null``.
"""

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from somseg.stats import Moments

METRICS_SCHEMA_VERSION = 1
TE_CONVENTIONS = {
    8: "8 neighbours (diagonals adjacent, as MiniSom)",
    4: "4 neighbours (direct only, as SOM Toolbox)",
}


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


Figure = Annotated[float | None, BeforeValidator(_finite_or_none)]
"""A measured figure; None where it is undefined (written as null)."""


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- the map ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MapFigures:
    """The trained map measured against every training row.

    Attributes
    ----------
    n_rows : int
    quantization_error : float
        Mean distance of a row to its best unit (standardised units).
    topographic_error, topographic_error_4 : float
        Share of rows whose two best units are not neighbours, 8 neighbours
        (MiniSom) and 4 (SOM Toolbox); NaN on a one-neuron map.
    explained_variance : float
        1 - mean squared distance to the best unit / total variance.
    kaski_lagus_error : float
        Mean of distance to the best unit + grid path to the second-best.
    outlier_threshold : float
        The ``outlier_percentile`` of the distances (exact).
    outlier_percentile : float
    hits : ndarray of shape (n_units,)
        Rows won by each neuron (row-major).
    neuron_moments : Moments
        Per neuron and feature: count, mean and squared deviations of the
        observed raw values of the rows it won.
    neuron_missing : ndarray of shape (n_units, n_features)
        Missing raw values among the rows each neuron won.
    one_neuron_quantization_error : float
        The quantization error of a one-neuron map: the mean distance of the
        standardised rows to their mean (NaN where not measured).
    """

    n_rows: int
    quantization_error: float
    topographic_error: float
    topographic_error_4: float
    explained_variance: float
    kaski_lagus_error: float
    outlier_threshold: float
    outlier_percentile: float
    hits: np.ndarray
    neuron_moments: Moments
    neuron_missing: np.ndarray
    one_neuron_quantization_error: float = float("nan")

    @property
    def dead_neurons(self) -> int:
        return int(np.sum(self.hits == 0))

    @property
    def dead_neuron_share(self) -> float:
        """The share of neurons no row is closest to."""
        return self.dead_neurons / max(len(self.hits), 1)

    @property
    def relative_quantization_error(self) -> float:
        """The quantization error over a one-neuron map's: about the same scale at any number of features."""
        baseline = self.one_neuron_quantization_error
        return self.quantization_error / baseline if baseline > 0 else float("nan")


# --- the evaluation -----------------------------------------------------------------------


class SeparationScores(_Record):
    """Separation and compactness of the customers' segments (standardised data, evaluation sample)."""

    silhouette: Figure = Field(description="Mean silhouette, in [-1, 1]; higher is better.")
    davies_bouldin: Figure = Field(description="Mean worst-case ratio of spread to centroid distance; lower is better.")
    calinski_harabasz: Figure = Field(description="Between- over within-segment dispersion per degree of freedom.")
    silhouette_rows: int = Field(description="Rows the silhouette was computed on (a seeded sample).")


class MapQuality(_Record):
    """How well the map fits every row and keeps its topology."""

    quantization_error: Figure
    explained_variance: Figure
    kaski_lagus_error: Figure
    topographic_error_8: Figure
    topographic_error_4: Figure
    dead_neurons: int
    dead_neuron_share: float

    @classmethod
    def of(cls, figures: MapFigures) -> "MapQuality":
        return cls(
            quantization_error=figures.quantization_error,
            explained_variance=figures.explained_variance,
            kaski_lagus_error=figures.kaski_lagus_error,
            topographic_error_8=figures.topographic_error,
            topographic_error_4=figures.topographic_error_4,
            dead_neurons=figures.dead_neurons,
            dead_neuron_share=float(np.mean(figures.hits == 0)),
        )


class Stability(_Record):
    """Agreement of bootstrap retrains with the run's segments."""

    ari: list[Figure] = Field(description="Adjusted Rand index of each resample against the run.")
    seeds: list[int] = Field(description="Map seed of each resample.")
    mean_ari: Figure
    min_ari: Figure
    min_mean_ari: float | None = Field(None, description="The stability gate, if configured.")
    passed: bool | None = Field(None, description="The gate's verdict; None without a gate.")


class KScore(_Record):
    """Validity of the neuron clustering into ``k`` segments (hit-weighted)."""

    k: int
    silhouette: Figure
    davies_bouldin: Figure
    calinski_harabasz: Figure
    mean_ari: Figure = None
    ari_se: Figure = None
    prediction_strength: Figure = None


class KChoice(_Record):
    """Scores of each candidate k and the recommended one (the run's k when ``segments.k`` is 'auto')."""

    scores: list[KScore]
    recommended_k: int
    reason: str
    configured_k: int
    reproducible: bool | None = None  # some k reached evaluation.min_prediction_strength; None: not measured
    auto: bool = False


class SegmentsEvaluation(SeparationScores):
    """The run's segments: method, k and their separation."""

    method: str
    k: int


class Evaluation(_Record):
    """The scientific evaluation of a run: ``metrics.json``'s ``evaluation`` block."""

    segments: SegmentsEvaluation
    map: MapQuality
    stability: Stability | None
    k_choice: KChoice
    notes: dict[str, str] = Field(default_factory=dict)


# --- metrics.json -------------------------------------------------------------------------


class Grid(_Record):
    rows: int
    cols: int


class InvalidRowsRecord(_Record):
    """``metrics.json``'s ``invalid_rows`` block: the rows left out for a value not a number or out of range."""

    policy: Literal["fail", "drop"] = Field(description="quality.invalid_rows of the run.")
    rejected_rows: int = Field(description="Rows dropped (0 under 'fail': a run with invalid rows stops).")
    input_rows: int = Field(description="Rows of the input, before any was dropped.")
    share: float = Field(description="rejected_rows / input_rows.")
    max_share: float = Field(description="quality.max_invalid_share of the run.")
    by_column: dict[str, int] = Field(
        default_factory=dict, description="Dropped rows per column they were invalid in (a row may count in several)."
    )


class Thresholds(_Record):
    """The gates a run was held to (the names and meanings of ``GateConfig``)."""

    max_quantization_error: float | None = None
    max_relative_quantization_error: float | None = None
    max_topographic_error: float
    min_explained_variance: float | None = None
    max_dead_neuron_share: float | None = None


class Provenance(_Record):
    """Where a model bundle comes from: its ``provenance.json``.

    Written when a training run publishes its outputs; a bundle from before
    has none.
    """

    trained_at: str = Field(description="When the training run published the model, ISO 8601 UTC, to the second.")
    training_run_id: str | None = Field(None, description="The Prefect flow run that trained it, when there was one.")
    run_dir: str | None = Field(None, description="The run folder the training run wrote.")
    input: str = Field(description="The training input as given.")
    input_sha256: str | None = Field(
        None, description="SHA-256 of the input file's content; of several files, of their SHA-256s in input order."
    )
    config_sha256: str = Field(description="SHA-256 of the run's config as canonical JSON (sorted keys).")


class PromotionRecord(_Record):
    """``metrics.json``'s ``promotion`` block: a training run's model in a registry, promoted or not."""

    registry: str = Field(description="The model registry folder.")
    version: str = Field(description="The version this run registered.")
    promoted: bool = Field(description="Whether the registry's CURRENT now names this version.")
    reason: str = Field(description="Why it was promoted or not, in words.")
    current: str | None = Field(description="The version the registry's CURRENT names after this step.")
    previous: str | None = Field(None, description="The version CURRENT named before this step.")
    label_agreement: Figure = Field(
        None, description="Share of the training rows whose segment label the version in compared_with gives too; "
        "None when not measured."
    )
    compared_with: str | None = Field(None, description="The promoted version the labels were compared with.")
    min_label_agreement: float | None = Field(None, description="promotion.min_label_agreement of the run.")


class TrainingMetrics(_Record):
    """``metrics.json`` of a training run."""

    schema_version: Literal[1] = METRICS_SCHEMA_VERSION
    quantization_error: Figure
    topographic_error: Figure
    topographic_error_adjacency: str = TE_CONVENTIONS[8]
    topographic_error_4: Figure
    relative_quantization_error: Figure = None
    explained_variance: Figure = None
    dead_neuron_share: Figure = None
    thresholds: Thresholds
    gates_passed: bool
    n_rows: int
    n_features: int
    n_partitions: int
    execution: Literal["local", "dask"]
    grid: Grid
    engine: str
    outlier_threshold: Figure
    outlier_percentile: float
    outlier_share: Figure = None
    input: str
    invalid_rows: InvalidRowsRecord | None = None
    evaluation: Evaluation | None = None
    promotion: PromotionRecord | None = None
    durations_seconds: dict[str, float] = Field(default_factory=dict)
    finished_at: str | None = None


class SegmentShare(_Record):
    segment: int
    label: str
    count: int
    share: Figure
    training_share: Figure


class ScoringFigures(_Record):
    """A scored table's figures: map fit, outliers, segment mix and feature drift against training."""

    n_rows: int
    quantization_error: Figure
    topographic_error: Figure
    topographic_error_adjacency: str = TE_CONVENTIONS[8]
    topographic_error_4: Figure
    outlier_share: Figure
    outlier_threshold: float
    segments: list[SegmentShare]
    segment_psi: Figure
    feature_psi: dict[str, Figure]


class Check(BaseModel):
    """One measured value against its limit.

    ``passed`` is False for a value that is missing or NaN: a figure that
    could not be measured never passes a gate. A drift check also carries
    ``sampling_level``, what sampling alone reaches on ``sampling_rows``
    rows with no drift at all; it passes up to the higher of the two.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    setting: str
    value: Figure
    limit: float
    at_least: bool = False
    sampling_level: float | None = None
    sampling_rows: int | None = None

    @property
    def bound(self) -> float:
        """The limit the value is held to: the setting's, or the sampling level where that is stricter to beat."""
        if self.sampling_level is None:
            return self.limit
        return min(self.limit, self.sampling_level) if self.at_least else max(self.limit, self.sampling_level)

    @property
    def passed(self) -> bool:
        if self.value is None or math.isnan(self.value):
            return False
        return self.value >= self.bound if self.at_least else self.value <= self.bound

    def problem(self) -> str:
        """The failure as one line: what, how much, against which setting."""
        shown = "not measured" if self.value is None or math.isnan(self.value) else f"{self.value:.5g}"
        relation = "<" if self.at_least else ">"
        bound = "min" if self.at_least else "max"
        line = f"{self.name} {shown} {relation} {bound} {self.limit} ({self.setting})"
        if self.sampling_level is not None and self.bound != self.limit:
            line += f", and {relation} {self.sampling_level:.3g}, the level sampling alone reaches on {self.sampling_rows:,} rows"
        return line


class DriftVerdict(_Record):
    """A scoring run's drift checks and what they found.

    ``judged`` is False when the checks were not held against their limits:
    drift checks turned off, or too few rows to tell drift from sampling;
    ``note`` then says which.
    """

    judged: bool
    note: str = ""
    checks: list[Check] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)


class ScoringMetrics(ScoringFigures):
    """``metrics.json`` of a scoring run."""

    schema_version: Literal[1] = METRICS_SCHEMA_VERSION
    model: str
    model_version: str | None = None
    model_registry: str | None = None
    model_provenance: Provenance | None = None
    input: str
    run_date: str | None = Field(None, description="The day the run scored, YYYY-MM-DD (what {date} in its paths became).")
    stale_model: str | None = Field(
        None, description="Why the promoted version was used though it is older than config.model_wait.max_age_hours."
    )
    n_partitions: int
    execution: Literal["local", "dask"]
    invalid_rows: InvalidRowsRecord | None = None
    drift_warnings: list[str] = Field(default_factory=list)
    drift: DriftVerdict | None = None
    durations_seconds: dict[str, float] = Field(default_factory=dict)
    finished_at: str | None = None


class TrainingRecord(_Record):
    """The training figures a model bundle keeps (``model.json``'s ``training`` block)."""

    n_rows: int
    quantization_error: Figure
    topographic_error: Figure
    segment_shares: list[float]
    feature_reference: dict[str, dict[str, list[float]]]


def dump_json(record: BaseModel) -> str:
    """A record as indented JSON (NaN as null), keys in schema order."""
    return record.model_dump_json(indent=2) + "\n"
