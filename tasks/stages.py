"""The stages of the flows: each maps its steps over the partitions, combines, and finishes.

A stage is what a line of a flow calls: ingest the input, validate it, fit
the cleaning, train the map, assess it, and so on. Partial work is a step
mapped over the partitions on the executor; partial results are added in
partition order and finished here, in the flow's process, by the core.
Nothing in a stage depends on where the steps run.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from somseg.assessment import EvaluationSample, finish_assessment, outlier_learner, sample_positions
from somseg.cleaning import CleaningFit, ScalingRequest
from somseg.config import (
    MAX_CATEGORIES,
    EvaluationConfig,
    FeatureSpec,
    QualityConfig,
    SegmentationConfig,
    SomConfig,
    validate_config,
)
from somseg.dataset import (
    Encodings,
    input_columns,
    input_levels,
    numeric_columns,
    source_digest,
    text_columns,
)
from somseg.encoding import learn_levels
from somseg.errors import DataError
from somseg.layout import REJECTED_FILE
from somseg.model import BundleSource
from somseg.quality import DuplicateCount, partition_suite, unique_columns
from somseg.registry import VERSIONS_DIR, Comparison, is_registry, read_current
from somseg.results import Evaluation, InvalidRowsRecord, MapFigures, ScoringFigures
from somseg.scoring import ScoreSummary
from somseg.som import build_engine, concrete_som
from somseg.stats import CoMoments, Request, WindowRequest, combine
from somseg.tasks import assessment as assess_steps
from somseg.tasks import cleaning as cleaning_steps
from somseg.tasks import ingest as ingest_steps
from somseg.tasks import model as model_steps
from somseg.tasks import quality as quality_steps
from somseg.tasks import registry as registry_steps
from somseg.tasks import scoring as scoring_steps
from somseg.tasks import segments as segment_steps
from somseg.tasks import som as som_steps
from somseg.tasks.catalog import (
    Cleaning,
    FiguresArtifact,
    ImputedPart,
    JsonDocument,
    MatchPart,
    ModelArtifact,
    NeuronSegments,
    Profiles,
    SegmentsPart,
    Store,
    TablePart,
    Weights,
)
from somseg.tasks.executor import Executor, learn
from somseg.validity import InvalidRowPolicy, RowScreen, row_screen

# Each task that counts duplicates reads one bucket of this many partitions' values: fewer, larger tasks.
PARTITIONS_PER_BUCKET = 4


@dataclass(frozen=True)
class Table:
    """The ingested input: its partitions, in order."""

    source: str
    parts: tuple[TablePart, ...]
    digest: str | None = None  # of the input's content (somseg.dataset.source_digest)

    @property
    def n_rows(self) -> int:
        return sum(part.n_rows for part in self.parts)

    @property
    def rejected(self) -> list[Path] | None:
        """Each partition's records of invalid values, in order; None when the ingest did not screen for them."""
        paths = [part.rejected_path for part in self.parts]
        return None if any(path is None for path in paths) else [path for path in paths if path is not None]

    @property
    def first_rows(self) -> list[int]:
        """The global index of each partition's first row."""
        return np.concatenate([[0], np.cumsum([part.n_rows for part in self.parts])[:-1]]).astype(int).tolist()


def resolve_features(config: SegmentationConfig, input_path: str) -> SegmentationConfig:
    """``config`` with its features: the ones it names, or else every numeric column of the input but the id.

    The levels of a categorical feature that the config does not list are
    learnt from the input (every level, most frequent first), and the
    returned config lists them, so that the model and scoring use the same.
    """
    if not config.features:
        names = numeric_columns(input_path, config.id_column)
        print(f"features: {', '.join(names)} (every numeric column of the input but {config.id_column!r}; "
              "name them in the config's 'features' or with --features to choose)")
        return config.with_features(names)
    if config.categories_known:
        return config
    unknown = [f.name for f in config.features if f.kind == "categorical" and f.categories is None]
    counts = input_levels(input_path, config.id_column, unknown)
    learnt = {}
    for name in unknown:
        try:
            learnt[name] = learn_levels(counts[name], name, MAX_CATEGORIES)
        except ValueError as exc:
            raise DataError(f"input {input_path}: {exc}") from exc
        print(f"categories of {name}: {', '.join(learnt[name])} (learnt from the input; list them in the config to fix them)")
    return config.with_categories(learnt)


def ingest(
    ex: Executor,
    store: Store,
    source: str,
    id_column: str,
    features: list[str],
    partition_rows: int,
    first_pass: Request | None = None,
    expressions: dict[str, str] | None = None,
    encodings: Encodings | None = None,
    screen: RowScreen | None = None,
) -> Table:
    """Plan the input and read it into partitions of the id column and the features.

    ``first_pass``, when given, is computed on every partition as it is read
    (the training flow passes the cleaning learner's first request).
    ``expressions`` (name -> text) derive features from input columns;
    ``encodings`` code ordinal and categorical ones (``features`` are then
    the model's columns). ``screen`` finds the invalid rows of each
    partition, and drops them if its policy says so, before the first pass.
    """
    expressions = expressions or {}
    plan = ex.run(ingest_steps.plan, source=source, columns=[id_column, *input_columns(features, expressions, encodings)],
                  partition_rows=partition_rows)
    parts = ex.map(
        ingest_steps.ingest_partition,
        {"part": plan},
        store=store,
        id_column=id_column,
        features=features,
        partition_rows=partition_rows,
        first_pass=first_pass,
        expressions=expressions,
        encodings=encodings or {},
        screen=screen,
    )
    return Table(source, tuple(part for group in parts for part in group), source_digest(plan))


def invalid_row_screen(
    features: Sequence[FeatureSpec], expressions: dict[str, str], policy: InvalidRowPolicy
) -> RowScreen:
    """The screen of the numeric ``features`` against their declared ranges, and of their input columns as numbers.

    Ordinal and categorical features and the dates expressions read are
    checked as they are coded or parsed instead.
    """
    numeric = [feature for feature in features if feature.kind == "numeric"]
    names = [feature.name for feature in numeric]
    dates = text_columns(expressions, None)
    inputs = [name for name in input_columns(names, expressions) if name not in dates]
    text = {name: "date" for name in dates} | {f.name: "category" for f in features if f.kind != "numeric"}
    return row_screen(names, [(feature.min, feature.max) for feature in numeric], inputs, policy, text)


def check_invalid_rows(table: Table, quality: QualityConfig) -> InvalidRowsRecord:
    """The screen's counts over every partition, judged against ``quality`` (the run stops here if they fail it)."""
    total = combine([part.invalid for part in table.parts])
    # Called in the flow's process, as the other decisions that stop a run: a gate, not work to distribute.
    record = ingest_steps.enforce_valid_rows(total, quality, table.source)
    if record.policy == "drop":
        columns = ", ".join(f"{name} {count:,}" for name, count in record.by_column.items()) or "none"
        print(f"invalid rows: dropped {record.rejected_rows:,} of {record.input_rows:,} ({record.share:.2%}; "
              f"quality.max_invalid_share {record.max_share:g}); by column: {columns}; listed in {REJECTED_FILE}")
    return record


def validate(ex: Executor, store: Store, table: Table, suite: dict[str, Any]) -> JsonDocument:
    """Great Expectations on every partition, uniqueness counted across them, one combined result."""
    unique = unique_columns(suite)
    n_buckets = -(-len(table.parts) // PARTITIONS_PER_BUCKET)
    suites = [partition_suite(suite, first=index == 0) for index in range(len(table.parts))]
    parts = ex.map(
        quality_steps.validate_partition, {"part": table.parts, "suite": suites}, store=store, unique=unique,
        n_buckets=n_buckets,
    )
    duplicates = {}
    for column in unique:
        counted = ex.map(quality_steps.count_bucket, {"index": list(range(n_buckets))}, parts=parts, column=column)
        rows = [DuplicateCount(*part.counts[column], 0, ()) for part in parts]
        duplicates[column] = combine(rows + counted)
    return ex.run(
        quality_steps.combine_validation, store=store, suite=suite, parts=parts,
        duplicates=duplicates, n_rows=table.n_rows,
    )


def cleaning_learner(features: Sequence[FeatureSpec], source: str) -> CleaningFit:
    """The learner of the medians, scaling and drift reference of ``features`` (its first request goes to ingest).

    A coded feature's columns are bounded by their codes (0 to the last
    level) and untransformed; a categorical feature's columns form a block.
    """
    names, bounds, transforms, blocks = [], [], [], []
    for feature in features:
        columns = feature.columns
        if feature.kind == "categorical":
            blocks.append(list(range(len(names), len(names) + len(columns))))
        if feature.kind == "numeric":
            bound = (feature.min, feature.max)
        else:
            bound = (0.0, 1.0 if feature.kind == "categorical" else float(len(feature.categories or ()) - 1))
        names += columns
        bounds += [bound] * len(columns)
        transforms += [feature.transform] * len(columns)
    return CleaningFit(names, bounds, source=f"input {source}", transforms=transforms, blocks=blocks or None,
                       refuse_constant=True)


@dataclass(frozen=True)
class Cleaned:
    """The fitted cleaning, and every partition imputed and ready to train on."""

    cleaning: Cleaning
    parts: list[ImputedPart]


def clean(ex: Executor, store: Store, table: Table, learner: CleaningFit, som: SomConfig) -> Cleaned:
    """Finish the cleaning learner over every partition, from the first pass the ingest computed.

    The last pass also imputes each partition and builds its training block.
    """
    names = list(learner.features)
    learner.update(combine([part.profile for part in table.parts]))
    request = learner.request()
    while isinstance(request, WindowRequest):
        learner.update(combine(ex.map(cleaning_steps.cleaning_pass, {"part": table.parts}, request=request, features=names)))
        request = learner.request()
    assert isinstance(request, ScalingRequest)
    parts = ex.map(cleaning_steps.impute, {"part": table.parts}, store=store, request=request, features=names, dedup=som.dedup)
    learner.update(combine([part.partial for part in parts]))
    return Cleaned(ex.run(cleaning_steps.save_cleaning, store=store, statistics=learner.result()), parts)


def train_map(
    ex: Executor,
    store: Store,
    cleaned: Cleaned,
    first_rows: list[int],
    som: SomConfig,
    partition_rows: int,
    progress: Callable[[float], None],
) -> Weights:
    """Train the map: MiniSom on every row gathered, or the batch engine's epochs over training blocks."""
    cleaning, parts = cleaned.cleaning, cleaned.parts
    if som.engine == "minisom":
        weights = ex.run(som_steps.train_minisom, store=store, parts=parts, cleaning=cleaning, som=som)
        progress(1.0)
        return weights
    trainer = build_engine(som).trainer()
    if som.init == "random":
        picks = trainer.random_picks(sum(part.n_rows for part in parts))
        trainer.start_random(
            combine(ex.map(som_steps.pick_rows, {"part": parts, "first_row": first_rows}, request=picks, cleaning=cleaning))
        )
    else:
        trainer.start_pca(standardised_moments(cleaned))
    blocks = ex.run(
        som_steps.pack_training_blocks, store=store, parts=parts, cleaning=cleaning, max_rows=partition_rows,
        dedup=som.dedup,
    )
    # Weights of deduplicated blocks count rows, so the table's rows are their total weight.
    n_rows = sum(part.n_rows for part in parts)
    if len(blocks.blocks) == 1:
        # One block holds the whole training set: its epochs need no exchange between tasks.
        weights = ex.run(
            som_steps.train_on_block, store=store, som=som, start=trainer.weights_, block=blocks.blocks[0],
            cleaning=cleaning, n_rows=n_rows,
        )
        progress(1.0)
        return weights
    trainer.plan(n_rows, sum(block.n_rows for block in blocks.blocks))
    # A block's first row: its first partition's.
    over = {"block": list(blocks.blocks), "first_row": [first_rows[first] for first in blocks.first_parts]}
    gather = trainer.gather_request(trainer.weights_.shape[2])
    if gather is not None and not any(block.weighted for block in blocks.blocks):
        # Every epoch samples: one pass gathers all their rows, and the epochs run here on them.
        trainer.fit_gathered(combine(ex.map(som_steps.gather_epoch_samples, over, request=gather, cleaning=cleaning)),
                             progress)
    else:
        learn(ex, trainer, som_steps.som_epoch, over, lambda: progress(trainer.epoch_ / som.epochs), cleaning=cleaning)
    return ex.run(som_steps.save_weights, store=store, weights=trainer.weights_)


def fit_grid(config: SegmentationConfig, cleaned: Cleaned, n_rows: int) -> SegmentationConfig:
    """``config`` with its map's 'auto' grid and radius made concrete for the cleaned table."""
    som = concrete_som(config.som, n_rows, standardised_moments(cleaned).covariance())
    if som is config.som:
        return config
    print(f"map: {som.rows}x{som.cols} neurons, radius {som.sigma:g} -> {som.sigma_end:g} "
          f"(som.rows, som.cols and som.sigma 'auto' for {n_rows:,} rows)")
    return validate_config({**config.model_dump(), "som": som.model_dump()}, "the config with its map's grid")


def use_recommended_k(config: SegmentationConfig, evaluation: Evaluation) -> SegmentationConfig:
    """``config`` with the k the evaluation recommended, when its ``segments.k`` is 'auto'."""
    choice = evaluation.k_choice
    print(f"segments: k={choice.recommended_k} (segments.k 'auto'; {choice.reason})")
    segments = config.segments.with_k(choice.recommended_k)
    return validate_config({**config.model_dump(), "segments": segments.model_dump()}, "the config with its k")


def standardised_moments(cleaned: Cleaned) -> CoMoments:
    """Co-moments of every standardised row, from those of the imputed rows."""
    cleaner = cleaned.cleaning.load().cleaner
    return combine([part.moments for part in cleaned.parts]).scaled(cleaner.mean_, cleaner.scale_)


@dataclass(frozen=True)
class Assessment:
    """The map against every row: its figures, each partition's matching, the evaluation sample."""

    figures: MapFigures
    matches: list[MatchPart]
    sample: EvaluationSample


def assess(
    ex: Executor,
    store: Store,
    table: Table,
    cleaned: Cleaned,
    weights: Weights,
    percentile: float,
    evaluation: EvaluationConfig,
) -> Assessment:
    """Match every partition to the map, add up the figures, find the exact outlier threshold."""
    first_rows = table.first_rows
    sample = sample_positions(table.n_rows, evaluation.stability_rows, evaluation.seed)
    local = [
        sample[(sample >= first) & (sample < first + part.n_rows)] - first
        for first, part in zip(first_rows, table.parts, strict=True)
    ]
    matches = ex.map(
        assess_steps.assess_partition,
        {"part": cleaned.parts, "sample": local, "first_row": first_rows},
        store=store,
        cleaning=cleaned.cleaning,
        weights=weights,
    )
    total = combine([match.partial for match in matches])
    outliers = learn(ex, outlier_learner(total, percentile), assess_steps.distance_pass, {"match": matches})
    figures = finish_assessment(total, weights.load(), outliers, percentile, standardised_moments(cleaned))
    return Assessment(figures, matches, total.sample)


def cluster(ex: Executor, store: Store, weights: Weights, figures: MapFigures, config: SegmentationConfig) -> NeuronSegments:
    """Cluster the neurons into segments."""
    return ex.run(segment_steps.cluster_segments, store=store, weights=weights, figures=figures, segments=config.segments)


def label(
    ex: Executor, store: Store, figures: MapFigures, neuron_segment: NeuronSegments, config: SegmentationConfig
) -> Profiles:
    """Profile the segments and name them by the rules."""
    return ex.run(
        segment_steps.label_segments, store=store, figures=figures, neuron_segment=neuron_segment,
        features=config.feature_names, k=config.segments.k, labels=config.labels, levels=config.level_names,
    )


def evaluate(
    ex: Executor,
    store: Store,
    assessment: Assessment,
    weights: Weights,
    neuron_segment: NeuronSegments | None,
    config: SegmentationConfig,
) -> Evaluation:
    """Cluster validity, stability and the choice of k, on the evaluation sample.

    With ``segments.k`` 'auto' (and no ``neuron_segment``), the evaluation
    chooses k first and evaluates the segments of that k.
    """
    from somseg.tasks.evaluation import (
        evaluate_run,  # training only: scoring need not load scikit-learn's metrics
    )

    document = ex.run(
        evaluate_run, store=store, sample=assessment.sample, weights=weights, neuron_segment=neuron_segment,
        figures=assessment.figures, som=config.som, segments=config.segments, evaluation=config.evaluation,
    )
    return Evaluation.model_validate(document.load())


@dataclass(frozen=True)
class Outputs:
    """What a training run publishes beyond its metrics."""

    model: ModelArtifact
    segments: list[SegmentsPart]
    figures: FiguresArtifact
    outlier_share: float


def write(
    ex: Executor,
    store: Store,
    table: Table,
    assessment: Assessment,
    cleaning: Cleaning,
    weights: Weights,
    neuron_segment: NeuronSegments,
    profiles: Profiles,
    suite: dict[str, Any],
    config: SegmentationConfig,
) -> Outputs:
    """The model bundle, every training row's segment, and the report's pictures."""
    from somseg.tasks.figures import draw_figures  # training only: scoring need not load matplotlib

    model = ex.run(
        model_steps.build_model, store=store, cleaning=cleaning, weights=weights, neuron_segment=neuron_segment,
        profiles=profiles, figures=assessment.figures, suite=suite, config=config,
    )
    # The pictures (Python-bound drawing) alongside the partitions' writes (mostly outside the GIL).
    drawing = ex.start(draw_figures, store=store, model=model, figures=assessment.figures, profiles=profiles)
    segments = ex.map(
        scoring_steps.assign_partition, {"part": table.parts, "match": assessment.matches}, store=store, model=model
    )
    figures = drawing.result()
    summary: ScoreSummary = combine([part.summary for part in segments])
    return Outputs(model, segments, figures, summary.outliers / max(summary.n_rows, 1))


def load_bundle(ex: Executor, store: Store, model_dir: str) -> ModelArtifact:
    """Fingerprint, verify and keep a copy of a model bundle for this run."""
    return ex.run(model_steps.load_model, store=store, bundle=BundleSource.of(model_dir))


def score(
    ex: Executor, store: Store, table: Table, model: ModelArtifact, metadata: dict[str, str] | None = None
) -> tuple[list[SegmentsPart], ScoringFigures]:
    """Segment every partition with the model; the table's figures against the training data's.

    ``metadata`` (which model scored the rows) goes into each part's Parquet key-value metadata.
    """
    segments = ex.map(scoring_steps.score_partition, {"part": table.parts}, store=store, model=model,
                      metadata=metadata or {})
    summary: ScoreSummary = combine([part.summary for part in segments])
    return segments, summary.figures(model.load())


def compare_with_promoted(
    ex: Executor,
    store: Store,
    registry: str,
    table: Table,
    segments: list[SegmentsPart],
    config: SegmentationConfig,
) -> Comparison | None:
    """The training rows' new segment labels against those of the registry's promoted version.

    Measured only when the promotion depends on it: ``promotion.auto`` with
    a ``min_label_agreement``, and a version promoted. A promoted version
    on other features (or another id column) cannot label these rows: the
    comparison then says so instead.
    """
    promotion = config.promotion
    if not promotion.auto or promotion.min_label_agreement is None or not is_registry(registry):
        return None
    current = read_current(registry)
    if current is None:
        return None
    model = load_bundle(ex, store, str(Path(registry) / VERSIONS_DIR / current.version))
    promoted = model.load()
    if promoted.id_column != config.id_column or promoted.features != list(config.features):
        return Comparison(current.version, None, "it was trained on other features or another id column")
    counts = ex.map(registry_steps.compare_partition, {"part": table.parts, "segments": segments}, model=model)
    return Comparison(current.version, combine(counts))
