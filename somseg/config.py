"""The one typed configuration of a segmentation run.

``SegmentationConfig`` is both the Prefect flow parameter (the UI renders it
as a form, with these descriptions) and what ``--config FILE`` supplies as
YAML. Its defaults are meant for any customer table: every numeric column
but the id as a feature, a data-quality suite derived from the config,
segments named from their profiles, and gates that mean the same at any
number of features. ``configs/reference.yaml`` holds the recipe of the
reference notebook (``REFERENCE.md``).
"""

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from somseg.encoding import model_columns
from somseg.errors import ConfigError
from somseg.expressions import parse_expression

# somseg.batch_som.NEIGHBOURHOODS, named here so that reading a config does not
# import the compiled kernels (a test keeps the two equal).
BATCH_NEIGHBOURHOODS = ("gaussian", "cutgauss")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


MAX_CATEGORIES = 50  # levels a categorical feature may have: more is an identifier or free text


class FeatureSpec(_Section):
    """One feature the map is trained on: a number, a ranked level, or a category."""

    name: str = Field(description="Column name in the input table.")
    kind: Literal["numeric", "ordinal", "categorical"] = Field(
        "numeric",
        description="'numeric'; 'ordinal': text levels in a known order, given in 'categories', coded 0, 1, 2, ...; "
        "'categorical': text levels without order, one-hot coded, the block weighted to count as one feature.",
    )
    categories: list[str] | None = Field(
        None,
        description="The levels of an ordinal feature, lowest first (required), or of a categorical one (optional: "
        "learnt from the training table when empty). A value outside them is an invalid row.",
    )
    min: float | None = Field(None, description="Smallest valid value (inclusive); none if unbounded.")
    max: float | None = Field(None, description="Largest valid value (inclusive); none if unbounded.")
    transform: Literal["none", "log1p", "signed_log1p", "robust", "quantile"] = Field(
        "none",
        description="Applied after imputation, at training and scoring alike: 'log1p' (log(1 + x), for skewed amounts "
        "and counts above -1), 'signed_log1p' (sign(x) log(1 + |x|), for either sign), 'robust' (centred on the "
        "median and scaled by the interquartile range instead of the mean and sd, for a few absurd values) or "
        "'quantile' (each value's training rank as a normal deviate, for any shape). Ranges, profiles and label "
        "thresholds stay in raw units.",
    )

    expr: str | None = Field(
        None,
        description="A derived feature: an expression of input columns, e.g. '2014 - Year_Birth' or "
        "'MntWines + MntFruits'; numbers, column names (quoted unless identifiers), + - * / **, parentheses, "
        "log1p, log, sqrt, abs, min, max (docs/configuration.md). Empty: the input column of this name.",
    )

    @model_validator(mode="after")
    def _range_is_ordered(self) -> "FeatureSpec":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"feature {self.name!r}: min {self.min} is above max {self.max}")
        if self.expr is not None:
            parse_expression(self.expr)  # a ValueError names what is not allowed
        if self.kind == "numeric":
            if self.categories is not None:
                raise ValueError(f"feature {self.name!r}: categories are for kind 'ordinal' or 'categorical'")
            return self
        settings = [key for key in ("min", "max", "expr") if getattr(self, key) is not None]
        if self.transform != "none":
            settings.append("transform")
        if settings:
            raise ValueError(f"feature {self.name!r}: a {self.kind} feature takes no {', '.join(settings)}")
        if self.kind == "ordinal" and not self.categories:
            raise ValueError(f"feature {self.name!r}: an ordinal feature needs its categories, lowest first")
        if self.categories is not None:
            levels = [str(level).strip() for level in self.categories]
            if len(set(levels)) != len(levels) or "" in levels:
                raise ValueError(f"feature {self.name!r}: categories must be distinct and not empty, got {self.categories}")
            if len(levels) > MAX_CATEGORIES:
                raise ValueError(f"feature {self.name!r}: {len(levels)} categories, at most {MAX_CATEGORIES}")
        return self

    @property
    def columns(self) -> list[str]:
        """The model's columns for this feature: its name, or ``name=level`` for each level of a categorical one.

        Raises
        ------
        ValueError
            For a categorical feature whose levels are not known yet.
        """
        if self.kind != "categorical":
            return [self.name]
        if self.categories is None:
            raise ValueError(f"categorical feature {self.name!r}: its categories are not known yet")
        return model_columns(self.name, self.kind, self.categories)


def encodings(features: list[FeatureSpec]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The coded features among ``features``: name -> (kind, levels)."""
    return {f.name: (f.kind, tuple(f.categories or ())) for f in features if f.kind != "numeric"}


def derived_features(features: list[FeatureSpec]) -> dict[str, str]:
    """The derived features among ``features``: name -> expression."""
    return {feature.name: feature.expr for feature in features if feature.expr is not None}


class SomConfig(_Section):
    """The Self-Organizing Map and how it is trained."""

    engine: Literal["minisom", "batch"] = Field(
        "batch",
        description=(
            "Training engine. 'batch' is Kohonen's batch rule, deterministic, learnt partition by partition and "
            "fast on millions of rows; 'minisom' is the reference notebook's online rule (configs/reference.yaml)."
        ),
    )
    rows: int | Literal["auto"] = Field(
        "auto", description="Grid rows; 'auto' (with cols 'auto') sizes the grid from the table (see docs/configuration.md)."
    )
    cols: int | Literal["auto"] = Field("auto", description="Grid columns; 'auto' together with rows.")
    sigma: float | Literal["auto"] = Field(
        "auto", description="Initial neighbourhood radius, in grid units; 'auto': a quarter of the grid's longer side."
    )
    learning_rate: float = Field(0.3, gt=0, description="Initial learning rate (MiniSom only).")
    neighborhood: Literal["gaussian", "cutgauss", "mexican_hat", "bubble", "triangle"] = Field(
        "gaussian",
        description="Neighbourhood function. Batch engine: 'gaussian' or 'cutgauss' (the Gaussian cut to zero beyond "
        "the radius, SOM Toolbox's: a closer fit, lower QE, and a higher topographic error; see "
        "docs/configuration.md). MiniSom: 'gaussian', 'mexican_hat', 'bubble' or 'triangle'.",
    )
    iterations: int = Field(8000, ge=1, description="Training iterations (one sample each for MiniSom).")
    init: Literal["random", "pca"] = Field(
        "pca", description="Weight initialisation: the plane of the first two principal components, or random rows of the data."
    )
    seed: int = Field(42, description="Random seed: the same seed and data give the same map.")
    epochs: int = Field(
        30, ge=1, description="Batch engine: passes over the data; the radius shrinks from 'sigma' to 'sigma_end' over them."
    )
    sigma_end: float = Field(
        1.0,
        gt=0,
        description="Batch engine: neighbourhood radius of the last epoch, in grid units. 1, as SOM Toolbox's batch "
        "fine-tuning ends: much below it the batch rule turns into k-means and the map loses its order on tables "
        "of many features (a high topographic error).",
    )
    chunk_rows: int | None = Field(
        None,
        ge=2,
        description="Batch engine: rows per chunk of the distance kernels (memory per thread); empty for automatic (~2 MB of distances).",
    )
    dedup: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Batch engine: train once per distinct row, weighted by its count ('auto': when at most half the rows are distinct).",
    )
    sample_rows_per_neuron: int | None = Field(
        200,
        ge=1,
        description="Batch engine: each epoch trains on a seeded random sample of about this many rows per neuron, "
        "times (sigma_end / the epoch's radius)^2, so the sample grows as the radius shrinks; a table of at most "
        "this many rows per neuron (distinct rows when deduplicated) is trained on every row in every epoch. "
        "Assignment, QE and TE always use every row. Empty: every epoch over every row.",
    )
    epoch_precision: Literal["float64", "float32"] = Field(
        "float64",
        description="Batch engine: arithmetic of the epochs' best-unit search. 'float32' does twice the work per "
        "instruction and may move only rows whose two best units are within its resolution; assignment, QE and "
        "TE are always float64, ranked as MiniSom ranks them.",
    )

    @property
    def grid_is_auto(self) -> bool:
        return self.rows == "auto"

    @model_validator(mode="after")
    def _batch_neighbourhood(self) -> "SomConfig":
        if (self.rows == "auto") != (self.cols == "auto"):
            raise ValueError("som.rows and som.cols are both 'auto' or both numbers")
        for name in ("rows", "cols"):
            value = getattr(self, name)
            if value != "auto" and not 1 <= value <= 500:
                raise ValueError(f"som.{name} must be between 1 and 500, got {value}")
        if self.sigma != "auto" and self.sigma <= 0:
            raise ValueError(f"som.sigma must be above 0, got {self.sigma}")
        if self.engine == "batch" and self.neighborhood not in BATCH_NEIGHBOURHOODS:
            raise ValueError(
                f"the batch engine's neighborhood is one of {', '.join(map(repr, BATCH_NEIGHBOURHOODS))}, "
                f"got {self.neighborhood!r}"
            )
        if self.engine == "minisom" and self.neighborhood == "cutgauss":
            raise ValueError("MiniSom has no 'cutgauss' neighborhood: use the batch engine, or 'gaussian'")
        return self


class GateConfig(_Section):
    """Thresholds that fail the run when the map is not good enough."""

    max_quantization_error: float | None = Field(
        None, gt=0, description="Largest acceptable quantization error, in standardised units; none = not checked. "
        "It grows with the number of features, so a fixed value suits one table only (the reference recipe sets 0.5)."
    )
    max_relative_quantization_error: float | None = Field(
        0.8,
        gt=0,
        description="Largest acceptable quantization error relative to a one-neuron map's (the mean distance of the "
        "standardised rows to their mean): the same scale at any number of features; none = not checked.",
    )
    max_topographic_error: float = Field(0.1, ge=0, le=1, description="Largest acceptable topographic error (share of rows).")
    min_explained_variance: float | None = Field(
        None, ge=0, le=1, description="Smallest acceptable share of the data's variance the map explains; none = reported only."
    )
    max_dead_neuron_share: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Largest acceptable share of neurons no training row is closest to; none = reported only (a "
        "table with few distinct rows leaves many neurons empty on a map sized for its row count).",
    )


class SegmentsConfig(_Section):
    """Macro-clustering of the map's neurons into segments."""

    method: Literal["kmeans", "ward"] = Field(
        "kmeans",
        description="Clustering method for the neuron weight vectors: 'kmeans', or 'ward' (SOM-Ward: hit-weighted "
        "Ward merging restricted to 4-neighbour grid adjacency, so every segment is a connected region of the map).",
    )
    k: Annotated[int, Field(ge=2, le=50)] | Literal["auto"] = Field(
        "auto",
        description="Number of segments; 'auto': the recommended k (the most reproducible segmentations, then the "
        "best of three validity indices: docs/report.md, Choice of k).",
    )
    n_init: int = Field(20, ge=1, description="KMeans restarts.")
    random_state: int = Field(42, description="Seed of the clustering.")
    weight_by_hits: bool = Field(
        True,
        description="KMeans: weight each neuron by the customers it wins, so segments follow where customers are and "
        "empty neurons between groups do not pull the centres (SOM-Ward always does); the reference recipe does not.",
    )

    def with_k(self, k: int) -> "SegmentsConfig":
        """These settings with ``k`` segments."""
        return self.model_copy(update={"k": int(k)})


class EvaluationConfig(_Section):
    """Scientific evaluation of a run: cluster validity, stability and the choice of k."""

    bootstrap_resamples: int = Field(
        10, ge=0, le=1000, description="Bootstrap resamples retrained to measure stability (0 skips the stability check)."
    )
    silhouette_sample: int = Field(
        10_000, ge=100, description="Rows sampled (seeded) for the customer-level silhouette, whose exact cost is O(N^2)."
    )
    stability_rows: int = Field(
        200_000, ge=1000, description="Rows (a seeded sample of larger tables) the bootstrap retrains and compares, so stability costs the same at 10 M rows as at 200,000."
    )
    k_min: int = Field(2, ge=2, le=50, description="Smallest number of segments tried when recommending k.")
    k_max: int = Field(8, ge=2, le=50, description="Largest number of segments tried when recommending k.")
    min_prediction_strength: float = Field(
        0.8,
        gt=0,
        le=1,
        description="A k is reproducible when its prediction strength on the bootstrap maps is at least this "
        "(Tibshirani and Walther's 0.8); the recommended k is chosen among the reproducible ones.",
    )
    min_mean_ari: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="Stability gate: fail the run when the mean bootstrap adjusted Rand index is below this; none = off.",
    )
    seed: int = Field(42, description="Seed of the silhouette sample, the bootstrap resamples and their map seeds.")

    @model_validator(mode="after")
    def _consistent(self) -> "EvaluationConfig":
        if self.k_min > self.k_max:
            raise ValueError(f"evaluation.k_min={self.k_min} is above evaluation.k_max={self.k_max}")
        if self.min_mean_ari is not None and self.bootstrap_resamples == 0:
            raise ValueError("evaluation.min_mean_ari needs bootstrap_resamples > 0 to measure stability")
        return self


class Condition(_Section):
    """A test on a segment's mean of one feature (observed values, raw units).

    Give either ``value`` (raw units) or ``z`` (population standard deviations
    away from the population mean), not both.
    """

    feature: str = Field(description="Feature whose segment mean is tested.")
    op: Literal[">", ">=", "<", "<="] = Field(description="Comparison.")
    value: float | None = Field(None, description="Threshold in the feature's raw units.")
    z: float | None = Field(None, description="Threshold in population standard deviations from the population mean.")

    @model_validator(mode="after")
    def _one_threshold(self) -> "Condition":
        if (self.value is None) == (self.z is None):
            raise ValueError(f"condition on {self.feature!r}: give exactly one of 'value' or 'z'")
        return self


class LabelRule(_Section):
    """A name given to the segment whose profile meets every condition."""

    label: str = Field(min_length=1, description="Human name of the segment.")
    when: list[Condition] = Field(min_length=1, description="Conditions, all of which must hold.")


class LabelsConfig(_Section):
    """Declarative naming of segments from their profiles.

    Rules are tried in order; each names at most one segment. When several
    unnamed segments meet a rule, the one meeting it by the widest margin (in
    population standard deviations) takes the name. A segment no rule names
    gets a descriptive name from how its profile differs from the population.
    """

    rules: list[LabelRule] = Field(
        default_factory=list,
        description="Ordered naming rules; without rules every segment is named from its profile "
        "(the reference recipe, configs/reference.yaml, has four).",
    )
    fallback_min_z: float = Field(
        0.5, gt=0, description="A feature enters a fallback name when its segment mean is this many population sds from the population mean."
    )

    @model_validator(mode="after")
    def _labels_unique(self) -> "LabelsConfig":
        names = [rule.label for rule in self.rules]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"label rules must have unique labels; repeated: {duplicates}")
        return self


class OutliersConfig(_Section):
    """How customers far from every neuron are flagged."""

    percentile: float = Field(
        95.0, gt=0, lt=100, description="Rows whose distance to their best unit is above this percentile of the training distances are outliers."
    )


class QualityConfig(_Section):
    """Data-quality checks run before training."""

    suite: str = Field(
        "auto",
        description="Expectation suite: 'auto' derives it from this config (columns, a unique non-null id, each "
        "feature's range and missing share, the minimum row count); else a name in expectations/ (without .json) "
        "or a path to a suite JSON file.",
    )
    min_rows: int = Field(100, ge=1, description="'auto' suite: fewest rows a training table may have.")
    max_missing_share: float = Field(
        0.5, ge=0, le=1, description="'auto' suite: largest share of missing values a feature may have (1: any)."
    )
    invalid_rows: Literal["fail", "drop"] = Field(
        "fail",
        description="Rows with a feature value that is not a number or lies outside its declared min/max (missing "
        "values are not invalid): 'fail' stops the run, naming the columns, counts and sample values; 'drop' leaves "
        "them out, records each invalid value in the run folder's rejected.parquet and counts them in metrics.json.",
    )
    max_invalid_share: float = Field(
        0.01,
        ge=0,
        le=1,
        description="'drop': largest share of the input's rows that may be dropped as invalid; above it the run "
        "still fails.",
    )


class PromotionConfig(_Section):
    """When a training run that writes into a model registry makes its model the one scoring uses."""

    auto: bool = Field(
        True,
        description="Promote the new version as the run succeeds (its gates passed); false: register it only, "
        "and promote it by hand with 'segment promote'.",
    )
    min_label_agreement: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Promote only if at least this share of the training rows keep their segment label under the "
        "new version (compared with the promoted one, on the same features); none = not checked. Not checked when "
        "nothing is promoted yet.",
    )


class LocalClusterSpec(_Section):
    """A Dask cluster started for the run on this machine (when no scheduler address is given)."""

    n_workers: int = Field(2, ge=1, description="Dask workers.")
    threads_per_worker: int = Field(1, ge=1, description="Threads per worker.")
    memory_limit: str = Field(
        "2GiB", description="Memory limit per worker (e.g. '2GiB'); workers spill to disk as they near it."
    )
    processes: bool = Field(
        False,
        description=(
            "Workers as separate processes. Leave false unless PREFECT_API_URL points at a Prefect server: "
            "without one, every worker process would start its own temporary Prefect server."
        ),
    )


class ExecutionConfig(_Section):
    """Where the pipeline's tasks run: threads of this process, or a Dask cluster.

    The same flows, tasks and partitions in both: the mode only chooses
    Prefect's task runner, so a run gives the same results either way.
    """

    mode: Literal["local", "dask"] = Field(
        "local",
        description="'local': tasks run on threads of the flow's process (Prefect's thread-pool task runner). "
        "'dask': tasks run on a Dask cluster (prefect-dask's task runner); needs the 'dask' extra.",
    )
    threads: int | None = Field(
        None, ge=1, description="Local mode: tasks run at once; empty for one per CPU (memory grows with it)."
    )
    scheduler_address: str | None = Field(
        None, description="Dask mode: scheduler of an existing cluster, e.g. 'tcp://10.0.0.5:8786'; empty to start a local one."
    )
    local_cluster: LocalClusterSpec = Field(
        default_factory=LocalClusterSpec, description="Dask mode: the local cluster to start when no scheduler address is given."
    )
    partition_rows: int = Field(
        1_000_000,
        ge=1_000,
        description="Most rows per partition, in both modes (whole Parquet row groups are kept together): "
        "the unit of work and of a task's memory.",
    )


class SegmentationConfig(_Section):
    """Everything a segmentation run needs besides its input and output locations."""

    id_column: str = Field("ID", description="Customer identifier, carried through untouched; never a feature.")
    features: list[FeatureSpec] = Field(
        default_factory=list,
        description="Numeric features, in the order the model uses them, with their valid ranges; empty: every "
        "numeric column of the input but the id (the run's config.yaml records which).",
    )
    som: SomConfig = Field(default_factory=SomConfig)
    gates: GateConfig = Field(default_factory=GateConfig)
    segments: SegmentsConfig = Field(default_factory=SegmentsConfig)
    labels: LabelsConfig = Field(default_factory=LabelsConfig)
    outliers: OutliersConfig = Field(default_factory=OutliersConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    promotion: PromotionConfig = Field(
        default_factory=PromotionConfig, description="With a model registry: when the new model becomes the one scoring uses."
    )
    execution: ExecutionConfig = Field(
        default_factory=ExecutionConfig, description="Where the run executes: in this process or on a Dask cluster."
    )

    @property
    def feature_names(self) -> list[str]:
        """The model's feature columns, in order: one per feature, one per level of a categorical one."""
        return [column for feature in self.features for column in feature.columns]

    @property
    def categories_known(self) -> bool:
        """Whether every categorical feature has its levels (given, or learnt from the table)."""
        return all(f.categories is not None for f in self.features if f.kind == "categorical")

    @property
    def level_names(self) -> dict[str, str]:
        """The one-hot columns of categorical features and how segment names show them: ``{"Gender=Female": "Gender: Female"}``."""
        return {
            column: f"{feature.name}: {level}"
            for feature in self.features
            if feature.kind == "categorical"
            for column, level in zip(feature.columns, feature.categories or (), strict=True)
        }

    @property
    def encodings(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        """The ordinal and categorical features: name -> (kind, levels)."""
        return encodings(self.features)

    @property
    def expressions(self) -> dict[str, str]:
        """The derived features: name -> expression."""
        return derived_features(self.features)

    def with_features(self, names: list[str]) -> "SegmentationConfig":
        """This config with ``names`` as its features (no ranges), checked again.

        Raises
        ------
        ConfigError
            If the config does not hold with these features (a label rule on another column, say).
        """
        try:
            return type(self).model_validate({**self.model_dump(), "features": [{"name": name} for name in names]})
        except ValidationError as exc:
            raise ConfigError(f"the config does not fit the features {names}:\n{_describe(exc)}") from exc

    def with_categories(self, levels: dict[str, list[str]]) -> "SegmentationConfig":
        """This config with the levels of categorical features filled in (name -> levels)."""
        features = [
            feature.model_copy(update={"categories": levels[feature.name]}) if feature.name in levels else feature
            for feature in self.features
        ]
        return validate_config({**self.model_dump(), "features": [f.model_dump() for f in features]}, "the config")

    @model_validator(mode="after")
    def _consistent(self) -> "SegmentationConfig":
        names = [feature.name for feature in self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"features must be unique; got {names}")
        if self.categories_known:
            names = self.feature_names
            if len(set(names)) != len(names):
                raise ValueError(f"feature columns must be unique; got {names}")
        if self.id_column in names:
            raise ValueError(f"id column {self.id_column!r} cannot also be a feature")
        unknown = sorted(
            {cond.feature for rule in self.labels.rules for cond in rule.when} - set(names)
        )
        if unknown and names:  # without features, they are the input's numeric columns: checked once known
            raise ValueError(f"label rules test features that are not in 'features': {unknown}")
        if not self.som.grid_is_auto and self.segments.k != "auto" and self.segments.k > self.som.rows * self.som.cols:
            raise ValueError(
                f"segments.k={self.segments.k} exceeds the {self.som.rows}x{self.som.cols} map's neurons"
            )
        return self


def load_config(path: str | Path | None) -> SegmentationConfig:
    """Read a YAML configuration file; ``None`` gives the reference defaults.

    Parameters
    ----------
    path : str, Path or None
        YAML file whose keys are those of :class:`SegmentationConfig`.
        Missing keys take their defaults.

    Returns
    -------
    SegmentationConfig

    Raises
    ------
    ConfigError
        If the file cannot be read or does not describe a valid config.

    Notes
    -----
    A relative path to a suite file (``quality.suite``) is relative to the
    config file's folder, and becomes absolute, so that the config a run
    writes (``config.yaml``) can be given again from any folder.
    """
    config = _load(path, SegmentationConfig)
    suite = Path(config.quality.suite)
    if path is None or suite.is_absolute() or not (suite.suffix == ".json" or suite.parent != Path(".")):
        return config
    quality = config.quality.model_copy(update={"suite": str((Path(path).parent / suite).resolve())})
    return config.model_copy(update={"quality": quality})


def _load(path: str | Path | None, model: type[_Section]) -> Any:
    if path is None:
        return model()
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                          f"{exc.start}); save it as UTF-8") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a mapping of settings, got {type(raw).__name__}")
    return validate_config(raw, f"config {path}", model)


def validate_config(settings: dict[str, Any], what: str, model: type[_Section] | None = None) -> Any:
    """``settings`` as a checked config (a :class:`SegmentationConfig` unless ``model`` says otherwise).

    Raises
    ------
    ConfigError
        Naming ``what`` and each problem's key.
    """
    try:
        return (model or SegmentationConfig).model_validate(settings)
    except ValidationError as exc:
        raise ConfigError(f"{what} is invalid:\n{_describe(exc)}") from exc


def _describe(exc: ValidationError) -> str:
    problems: dict[str, list[str]] = {}
    for error in exc.errors():
        # A setting that takes a number or 'auto' fails both ways: one line for the setting, not one per branch.
        parts = [str(part) for part in error["loc"] if not _UNION_BRANCH.fullmatch(str(part))]
        problems.setdefault(".".join(parts) or "(top level)", []).append(error["msg"])
    return "\n".join(f"  - {where}: {' or '.join(messages)}" for where, messages in problems.items())


_UNION_BRANCH = re.compile(r"(constrained-)?(int|float|str|bool)|literal\[.*\]")


class DriftGateConfig(_Section):
    """When scored data has drifted too far from the training data."""

    action: Literal["warn", "fail", "off"] = Field(
        "warn", description="On drift beyond a limit: log a warning, fail the run, or do not check."
    )
    max_outlier_share: float = Field(
        0.15, ge=0, le=1, description="Largest acceptable share of outliers (training: 1 - percentile/100)."
    )
    max_segment_psi: float = Field(0.25, ge=0, description="Largest acceptable population stability index of the segment mix.")
    max_feature_psi: float = Field(0.25, ge=0, description="Largest acceptable population stability index of any feature.")
    false_alarm_rate: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="Chance that a run with no drift at all still crosses a limit, shared by all the checks: "
        "on small tables a limit rises to the level that sampling alone reaches at this rate.",
    )
    min_rows: int = Field(
        30, ge=1, description="Fewer scored rows than this are too few to judge drift: the figures are reported, not judged."
    )


class ScoringQualityConfig(_Section):
    """How a scoring run treats invalid rows; empty settings take the model's training config."""

    invalid_rows: Literal["fail", "drop"] | None = Field(
        None,
        description="Rows with a feature value that is not a number or outside the model's ranges: 'fail' or "
        "'drop' (dropped rows are not scored and are listed in rejected.parquet); empty: the model's "
        "quality.invalid_rows.",
    )
    max_invalid_share: float | None = Field(
        None, ge=0, le=1,
        description="'drop': largest share of rows that may be dropped; empty: the model's quality.max_invalid_share.",
    )

    def resolve(self, training: dict[str, Any]) -> QualityConfig:
        """The invalid-row settings of a scoring run: these, else the training config's (a model's ``config``).

        A model trained before the settings existed gives their defaults.
        """
        trained = QualityConfig().model_copy(
            update={key: value for key, value in training.get("quality", {}).items()
                    if key in ("invalid_rows", "max_invalid_share")}
        )
        chosen = {key: value for key, value in self.model_dump().items() if value is not None}
        return trained.model_copy(update=chosen)


class ModelWaitConfig(_Section):
    """How fresh the promoted model must be before a scoring run of a registry starts, and how long to wait for it."""

    max_age_hours: float | None = Field(
        None, gt=0,
        description="Score only with a promoted version trained at most this many hours before the run's date and "
        "time (its scheduled time, or now); wait for one. None: any promoted version. Registries only.",
    )
    timeout_minutes: float = Field(
        120, ge=0, description="How long to wait for a fresh enough promoted version."
    )
    on_timeout: Literal["use_promoted", "fail"] = Field(
        "use_promoted",
        description="When none came in time: score with the promoted version, with a warning (a training that "
        "failed its gates promotes nothing, and scoring goes on with the previous model), or fail (exit 6).",
    )
    poll_seconds: float = Field(30, gt=0, description="How often the registry is looked at while waiting.")


class ScoringConfig(_Section):
    """Settings of a scoring run; everything else comes from the model bundle."""

    drift: DriftGateConfig = Field(default_factory=DriftGateConfig)
    model_wait: ModelWaitConfig = Field(
        default_factory=ModelWaitConfig, description="Wait for a fresh enough promoted model (a registry only)."
    )
    quality: ScoringQualityConfig = Field(
        default_factory=ScoringQualityConfig,
        description="Invalid rows: as the model was trained unless set here.",
    )
    execution: ExecutionConfig = Field(
        default_factory=ExecutionConfig, description="Where the run executes: in this process or on a Dask cluster."
    )


def load_scoring_config(path: str | Path | None) -> ScoringConfig:
    """Read a scoring YAML file (keys of :class:`ScoringConfig`); ``None`` gives the defaults."""
    return _load(path, ScoringConfig)
