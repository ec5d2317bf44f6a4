"""Every pass/fail decision of a run, in one place.

The quality gates (quantization error, absolute or relative to a one-neuron
map, topographic error, explained variance), the stability gate
(mean bootstrap ARI) and the drift limits of a scoring run are each a list of
:class:`Check`; the invalid rows of an input are judged by
:func:`judge_invalid_rows`. The tasks that stop a run, ``metrics.json``'s
``gates_passed``, the run summary in the Prefect UI and the HTML report all
read these, so they cannot disagree.
"""

from collections.abc import Sequence
from typing import Protocol

from somseg.config import DriftGateConfig, GateConfig, QualityConfig
from somseg.drift import sampling_psi, sampling_share
from somseg.errors import DataError
from somseg.results import Check, DriftVerdict, InvalidRowsRecord, ScoringFigures, TrainingRecord
from somseg.validity import InvalidRows

__all__ = [
    "Check", "MapQuality", "drift_checks", "failed", "judge_drift", "judge_invalid_rows", "map_checks", "stability_check",
]


class MapQuality(Protocol):
    """The figures the map's gates read (``MapFigures``, or a run's ``TrainingMetrics``)."""

    @property
    def quantization_error(self) -> float | None: ...
    @property
    def relative_quantization_error(self) -> float | None: ...
    @property
    def topographic_error(self) -> float | None: ...
    @property
    def explained_variance(self) -> float | None: ...
    @property
    def dead_neuron_share(self) -> float | None: ...


def map_checks(figures: MapQuality | None, gates: GateConfig) -> list[Check]:
    """The map's quality gates that ``gates`` sets, in the order of the gate table.

    ``figures`` None gives the checks with no value (a run that stopped
    before the map was measured).
    """
    def value(name: str) -> float | None:
        return None if figures is None else getattr(figures, name)

    checks = [
        ("quantization error", "max_quantization_error", "quantization_error", False),
        ("quantization error relative to one neuron", "max_relative_quantization_error",
         "relative_quantization_error", False),
        ("topographic error", "max_topographic_error", "topographic_error", False),
        ("explained variance", "min_explained_variance", "explained_variance", True),
        ("dead neuron share", "max_dead_neuron_share", "dead_neuron_share", False),
    ]
    return [
        Check(name=name, setting=f"gates.{setting}", value=value(figure), limit=getattr(gates, setting), at_least=at_least)
        for name, setting, figure, at_least in checks
        if getattr(gates, setting) is not None
    ]


def stability_check(mean_ari: float | None, min_mean_ari: float | None) -> Check | None:
    """The stability gate, or None when it is off (``evaluation.min_mean_ari`` unset)."""
    if min_mean_ari is None:
        return None
    return Check(
        name="mean bootstrap adjusted Rand index",
        setting="evaluation.min_mean_ari",
        value=mean_ari,
        limit=min_mean_ari,
        at_least=True,
    )


def drift_checks(
    figures: ScoringFigures, training: TrainingRecord, outlier_share: float, drift: DriftGateConfig
) -> list[Check]:
    """The drift checks of a scoring run, the features with the largest PSI first.

    Each check's limit is its setting; each also carries the level that
    sampling alone exceeds with probability ``drift.false_alarm_rate``
    shared over all the checks (Bonferroni), for a table of
    ``figures.n_rows`` rows drawn from the training distribution, whose
    figures came from ``training.n_rows`` rows. A check fails only above
    both, so that scoring a few dozen rows raises no alarm that sampling
    alone explains.

    Parameters
    ----------
    figures : ScoringFigures
        The scored table's figures.
    training : TrainingRecord
        The model's training figures: segment shares and feature bins.
    outlier_share : float
        The training data's share of outliers (``1 - outliers.percentile / 100``).
    drift : DriftGateConfig

    Returns
    -------
    list of Check
    """
    n, reference_rows = figures.n_rows, training.n_rows
    features = sorted(figures.feature_psi.items(), key=lambda item: -(item[1] if item[1] is not None else float("inf")))
    quantile = 1.0 - drift.false_alarm_rate / (2 + len(features))
    references = training.feature_reference
    checks = [
        Check(name="outlier share", setting="drift.max_outlier_share", value=figures.outlier_share,
              limit=drift.max_outlier_share, sampling_level=sampling_share(outlier_share, n, quantile), sampling_rows=n),
        Check(name="segment mix PSI", setting="drift.max_segment_psi", value=figures.segment_psi,
              limit=drift.max_segment_psi, sampling_rows=n,
              sampling_level=sampling_psi(training.segment_shares, n, quantile, reference_rows=reference_rows, seed=0)),
    ]
    for feature, psi in features:
        shares = references[feature]["shares"] if feature in references else [1.0]
        # A seed per feature, fixed by its position in the model, so the levels are the same run after run.
        seed = 1 + list(references).index(feature) if feature in references else 0
        checks.append(Check(
            name=f"feature {feature} PSI", setting="drift.max_feature_psi", value=psi, limit=drift.max_feature_psi,
            sampling_rows=n, sampling_level=sampling_psi(shares, n, quantile, reference_rows=reference_rows, seed=seed),
        ))
    return checks


def failed(checks: Sequence[Check | None]) -> list[str]:
    """One line per failed check."""
    return [check.problem() for check in checks if check is not None and not check.passed]


def judge_drift(
    figures: ScoringFigures, training: TrainingRecord, outlier_share: float, drift: DriftGateConfig
) -> DriftVerdict:
    """The drift checks of a scoring run (:func:`drift_checks`) and what crossed its limit.

    Nothing is judged when ``drift.action`` is 'off', or when the table has
    fewer than ``drift.min_rows`` rows: the verdict's note says so, and its
    checks still show the figures.
    """
    checks = drift_checks(figures, training, outlier_share, drift)
    if drift.action == "off":
        return DriftVerdict(judged=False, note="not checked (drift.action is off)", checks=checks)
    if figures.n_rows < drift.min_rows:
        note = (f"too few rows to judge drift: {figures.n_rows:,} scored, drift.min_rows is {drift.min_rows:,}; "
                "so few rows differ from the training data by chance as much as by drift")
        return DriftVerdict(judged=False, note=note, checks=checks)
    return DriftVerdict(judged=True, checks=checks, problems=failed(checks))


def judge_invalid_rows(total: InvalidRows, quality: QualityConfig, source: str) -> InvalidRowsRecord:
    """Whether a run may go on with the invalid rows the screen found, and what it records of them.

    Parameters
    ----------
    total : InvalidRows
        The screen's partial results added over every partition.
    quality : QualityConfig
        ``invalid_rows`` ('fail' or 'drop') and ``max_invalid_share``.
    source : str
        The input, as the messages name it.

    Returns
    -------
    InvalidRowsRecord
        ``metrics.json``'s ``invalid_rows`` block.

    Raises
    ------
    DataError
        Under 'fail', if any row is invalid; under 'drop', if the share of
        invalid rows is above ``max_invalid_share``. The message names the
        input and its files, each column with its count per reason and
        sample values, and the setting to change.
    """
    where = f"input {source}"
    if total.files and list(total.files) != [source]:
        where += f" ({', '.join(total.files[:5])}{', ...' if len(total.files) > 5 else ''})"
    details = "; ".join(total.problems())
    if quality.invalid_rows == "fail" and total.n_invalid:
        raise DataError(
            f"{where}: {total.n_invalid:,} row(s) have a value that does not parse (as a number, date or category) "
            f"or is outside its declared range: {details}. Correct the input, or set quality.invalid_rows: drop to leave such rows out "
            f"(quality.max_invalid_share, now {quality.max_invalid_share:g}, limits how many)"
        )
    if total.share > quality.max_invalid_share:
        raise DataError(
            f"{where}: {total.n_invalid:,} of {total.n_rows:,} row(s) ({total.share:.2%}) are invalid, above "
            f"quality.max_invalid_share {quality.max_invalid_share:g}: {details}. Correct the input, or raise "
            "quality.max_invalid_share to drop them"
        )
    return InvalidRowsRecord(
        policy=quality.invalid_rows, rejected_rows=total.n_invalid if quality.invalid_rows == "drop" else 0,
        input_rows=total.n_rows, share=total.share, max_share=quality.max_invalid_share, by_column=total.by_column(),
    )
