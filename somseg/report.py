"""A self-contained HTML report of a run folder.

Everything comes from the files a training run writes (``metrics.json``,
``profiles.parquet``, ``segments.parquet``, ``validation.json``,
``config.yaml``, ``model/``), so a report can be rebuilt from a run folder
alone, without the training data: ``segment report DIR``. Images are
embedded as base64, so ``report.html`` can be mailed or archived as one file.
"""

import base64
import html
import json
import math
import shutil
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from somseg.config import GateConfig, SegmentationConfig
from somseg.errors import DataError
from somseg.gates import map_checks
from somseg.io import atomic_path, read_written
from somseg.layout import (
    CONFIG_FILE,
    FIGURES_DIR,
    METRICS_FILE,
    MODEL_DIR,
    PROFILES_FILE,
    REPORT_FILE,
    SEGMENTS_FILE,
    VALIDATION_FILE,
)
from somseg.plots import FIGURES, draw_figures, load_map_view
from somseg.results import Evaluation, TrainingMetrics

_REQUIRED = (METRICS_FILE, PROFILES_FILE, SEGMENTS_FILE, MODEL_DIR)
_NUM_CELL = '<td class="num">'

# Published rules of thumb, shown as guides (never as gates).
# Kaufman & Rousseeuw (1990) for the silhouette; Steinley (2004) for the ARI.
SILHOUETTE_BANDS = [
    (0.70, "strong structure"),
    (0.50, "reasonable structure"),
    (0.25, "weak structure"),
    (-math.inf, "no substantial structure"),
]
ARI_BANDS = [(0.90, "excellent"), (0.80, "good"), (0.65, "moderate"), (-math.inf, "poor")]


@dataclass(frozen=True)
class RunFolder:
    """The contents of a run folder that the report shows.

    Attributes
    ----------
    path : Path
    metrics : TrainingMetrics
        ``metrics.json``.
    profiles : DataFrame
    validation : dict or None
        ``validation.json``, if present.
    config_text : str
        ``config.yaml`` as written (empty if absent).
    feature_names : list of str
    """

    path: Path
    metrics: TrainingMetrics
    profiles: pd.DataFrame
    validation: dict[str, Any] | None
    config_text: str
    feature_names: list[str]


def read_run_folder(run_dir: str | Path) -> RunFolder:
    """Read what the report needs from a run folder.

    Raises
    ------
    DataError
        If ``run_dir`` is not a folder with the files a training run writes.
    """
    path = Path(run_dir).resolve()
    missing = [name for name in _REQUIRED if not (path / name).exists()]
    if not path.is_dir() or missing:
        raise DataError(
            f"{path} is not a run folder written by 'segment train'"
            + (f": it lacks {', '.join(missing)}" if path.is_dir() else ": no such folder")
        )
    profiles = read_written(path / PROFILES_FILE, pd.read_parquet)
    config_text = read_written(path / CONFIG_FILE, _read_text)
    return RunFolder(
        path=path,
        metrics=read_written(path / METRICS_FILE, lambda p: TrainingMetrics.model_validate_json(p.read_bytes())),
        profiles=profiles,
        validation=read_written(path / VALIDATION_FILE, lambda p: json.loads(p.read_text(encoding="utf-8")))
        if (path / VALIDATION_FILE).is_file()
        else None,
        config_text=config_text,
        feature_names=read_written(path / CONFIG_FILE, lambda _: _feature_names(config_text, profiles)),
    )


def build_report(run_dir: str | Path, figures_dir: str | Path | None = None, published_as: str | Path | None = None) -> Path:
    """Draw the figures into ``<run>/figures/`` and write ``<run>/report.html``.

    Parameters
    ----------
    run_dir : str or Path
        A run folder.
    figures_dir : str or Path, optional
        Figures already drawn (PNG files named as :data:`somseg.plots.FIGURES`)
        to copy instead of drawing them again from the run folder.
    published_as : str or Path, optional
        The folder the report will be read in, when ``run_dir`` is a staging
        folder swapped into place later (the title and the rebuild command name it).

    Returns
    -------
    Path
        The report file.
    """
    run = read_run_folder(run_dir)
    target = run.path / FIGURES_DIR
    with atomic_path(target) as tmp:
        tmp.mkdir()
        if figures_dir is None:
            view = load_map_view(run.path / MODEL_DIR, run.path / SEGMENTS_FILE, run.path / PROFILES_FILE)
            draw_figures(view, tmp)
        else:
            for name in FIGURES:
                if (Path(figures_dir) / f"{name}.png").is_file():
                    shutil.copyfile(Path(figures_dir) / f"{name}.png", tmp / f"{name}.png")
    figures = {name: target / f"{name}.png" for name in FIGURES if (target / f"{name}.png").is_file()}
    with atomic_path(run.path / REPORT_FILE) as tmp:
        tmp.write_text(render_report(run, figures, Path(published_as or run.path).resolve()), encoding="utf-8")
    return run.path / REPORT_FILE


def render_report(run: RunFolder, figures: Mapping[str, Path], location: Path | None = None) -> str:
    """The report as one HTML document, figures inlined.

    Parameters
    ----------
    run : RunFolder
    figures : mapping of str to Path
        PNG file of each figure name of :data:`somseg.plots.FIGURES`;
        missing ones are left out.

    Returns
    -------
    str
    """
    evaluation = run.metrics.evaluation
    sections = [
        _summary_section(run, evaluation),
        _segments_section(run, figures),
        _metrics_section(run.metrics, evaluation),
        _k_section(evaluation),
        _stability_section(evaluation),
        _map_section(figures),
        _quality_section(run.validation),
        f"<h2>Configuration</h2><p>As used by the run (<code>{CONFIG_FILE}</code>).</p>"
        f"<pre>{_esc(run.config_text or 'config.yaml not found in the run folder')}</pre>",
    ]
    location = location or run.path
    title = f"Segmentation report: {location.name}"
    return (
        f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>\n<body>\n<h1>{_esc(title)}</h1>\n"
        + "\n".join(f"<section>{section}</section>" for section in sections if section)
        + f"\n<footer>Rebuild with <code>segment report {_esc(str(location))}</code>.</footer>\n</body></html>\n"
    )


def failure_report(
    weights: np.ndarray,
    hits: np.ndarray,
    metrics: TrainingMetrics,
    validation: dict[str, Any] | None,
    config: SegmentationConfig,
    run_dir: str | Path,
) -> Callable[[Path, BaseException], Path]:
    """What :func:`write_failure_report` writes for a run stopped by a gate, as a callable of the folder and the error."""
    config_text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)

    def write(folder: Path, error: BaseException) -> Path:
        return write_failure_report(folder, weights, hits, metrics, validation, config_text, str(error), run_dir)

    return write


def write_failure_report(
    folder: str | Path,
    weights: np.ndarray,
    hits: np.ndarray,
    metrics: TrainingMetrics,
    validation: dict[str, Any] | None,
    config_text: str,
    error: str,
    run_dir: str | Path,
) -> Path:
    """A report of a training run stopped by a gate: what it measured, and its map to look at.

    Draws the U-matrix and the hit map into ``<folder>/figures/`` and writes
    ``<folder>/report.html`` with the error, the figures against their
    gates, the map and the data-quality result. There are no segments yet.

    Parameters
    ----------
    folder : str or Path
        Where the failed run's diagnostics go (``<run>/last_failure``).
    weights : ndarray of shape (rows, cols, n_features)
    hits : ndarray of shape (rows * cols,)
    metrics : TrainingMetrics
    validation : dict, optional
        The data-quality report.
    config_text : str
        The run's config as YAML.
    error : str
        Why the run stopped.
    run_dir : str or Path
        The run's output folder, named in the title.

    Returns
    -------
    Path
        The report file.
    """
    from somseg.plots import plot_hit_map, plot_u_matrix, save_png

    folder = Path(folder)
    shape = weights.shape[:2]
    figures = {
        "u_matrix": save_png(plot_u_matrix(weights), folder / FIGURES_DIR / "u_matrix.png"),
        "hit_map": save_png(plot_hit_map(hits, shape), folder / FIGURES_DIR / "hit_map.png"),
    }
    title = f"Failed training run: {Path(run_dir).name}"
    sections = [
        f"<h2>Why it stopped</h2><p>{_esc(error)}</p><p class=\"note\">The map below did not pass its gates, "
        "so no segments were made and the previous outputs of the folder were left as they were.</p>",
        _metrics_section(metrics, None),
        _map_section(figures),
        _quality_section(validation),
        f"<h2>Configuration</h2><pre>{_esc(config_text)}</pre>",
    ]
    page = (
        f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>\n<body>\n<h1>{_esc(title)}</h1>\n"
        + "\n".join(f"<section>{section}</section>" for section in sections if section)
        + "\n</body></html>\n"
    )
    with atomic_path(folder / REPORT_FILE) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return folder / REPORT_FILE


# ---------------------------------------------------------------- sections


def _summary_section(run: RunFolder, evaluation: Evaluation | None) -> str:
    metrics = run.metrics
    facts = [  # (name, HTML value)
        ("Input", _esc(metrics.input)),
        ("Customers", _fmt_int(metrics.n_rows)),
        ("Features", _esc(", ".join(run.feature_names))),
        ("Map", _esc(f"{metrics.grid.rows} × {metrics.grid.cols}, engine {metrics.engine}")),
        ("Execution", _esc(f"{metrics.execution}, {metrics.n_partitions} partition(s)")),
        ("Finished", _esc(metrics.finished_at or "?")),
        ("Quality gates", _verdict(metrics.gates_passed)),
        ("Data quality", _verdict(None if run.validation is None else bool(run.validation.get("success")))),
    ]
    if evaluation:
        choice = evaluation.k_choice
        text = (f"k = {evaluation.segments.k} ({evaluation.segments.method}{', auto' if choice.auto else ''}); "
                f"recommended k = {choice.recommended_k}")
        if choice.reproducible is False:
            text += " (no k is reproducible: no clear cluster structure)"
        facts.append(("Segments", _esc(text)))
        if evaluation.stability is not None and evaluation.stability.passed is not None:
            facts.append(("Stability gate", _verdict(evaluation.stability.passed)))
    rows = "".join(f"<tr><th>{_esc(name)}</th><td>{value}</td></tr>" for name, value in facts)
    return f"<h2>Summary</h2><table class=\"facts\">{rows}</table>"


def _segments_section(run: RunFolder, figures: Mapping[str, Path]) -> str:
    profiles = run.profiles
    headers = ["Segment", "Label", "Customers", "Share"] + [f"{name} mean ± sd" for name in run.feature_names]
    rows = []
    for record in profiles.to_dict("records"):
        cells = [record["segment"], record.get("label", ""), _fmt_int(record["size"]), f"{record['share']:.1%}"]
        cells += [_mean_sd(record, name) for name in run.feature_names]
        rows.append(cells)
    note = (
        "Means and sample standard deviations over the observed raw values (missing values skipped, not imputed); "
        "the number of imputed values, where any, is in brackets."
    )
    return (
        "<h2>Segments</h2>"
        + _figure(figures, "segment_map")
        + _table(headers, rows, numeric=range(2, len(headers)))
        + f"<p class=\"note\">{_esc(note)}</p>"
        + _figure(figures, "profiles")
    )


def _metrics_section(metrics: TrainingMetrics, evaluation: Evaluation | None) -> str:
    checks = map_checks(metrics, GateConfig(**metrics.thresholds.model_dump()))
    rows = [[check.name.capitalize() + (" (8 neighbours, MiniSom)" if "topographic" in check.name else ""),
             _fmt(check.value), f"{'≥' if check.at_least else '≤'} {check.limit} (gate)", _verdict(check.passed)]
            for check in checks]
    gated = {check.name for check in checks}
    for name, value in (("quantization error relative to one neuron", metrics.relative_quantization_error),
                        ("explained variance", metrics.explained_variance),
                        ("dead neuron share", metrics.dead_neuron_share)):
        if name not in gated and value is not None:
            rows.append([name.capitalize(), _fmt(value), "reported only", _info()])
    rows.append(["Topographic error (4 neighbours, SOM Toolbox)", _fmt(metrics.topographic_error_4), "reported only", _info()])
    if evaluation:
        rows += _evaluation_rows(evaluation)
    table = _table(["Measure", "Value", "Threshold or guide", "Verdict"], rows, numeric={1}, raw={3})
    missing = "" if evaluation else "<p class=\"note\">The scientific evaluation was not computed for this run.</p>"
    return "<h2>Metrics against thresholds</h2>" + table + missing


def _evaluation_rows(evaluation: Evaluation) -> list[list[Any]]:
    quality, segments, stability = evaluation.map, evaluation.segments, evaluation.stability
    dead = f"{quality.dead_neurons} ({quality.dead_neuron_share:.1%})"
    silhouette_guide = "Kaufman & Rousseeuw: > 0.70 strong, > 0.50 reasonable, > 0.25 weak"
    rows = [
        ["Explained variance", _fmt(quality.explained_variance), "higher is better (1 = perfect codebook)", _info()],
        ["Kaski–Lagus error", _fmt(quality.kaski_lagus_error), "lower is better; compare maps of the same data", _info()],
        ["Dead neurons (no hits)", dead, "lower is better; many suggest an oversized map", _info()],
        [
            "Silhouette (customers, standardised)", _fmt(segments.silhouette), silhouette_guide,
            _band(segments.silhouette, SILHOUETTE_BANDS),
        ],
        ["Davies–Bouldin", _fmt(segments.davies_bouldin), "lower is better (0 = fully separated)", _info()],
        ["Calinski–Harabasz", _fmt(segments.calinski_harabasz, 1), "higher is better; compare k on the same data", _info()],
    ]
    if stability:
        gate = stability.min_mean_ari
        guide = f"≥ {gate} (gate)" if gate is not None else "Steinley: ≥ 0.90 excellent, ≥ 0.80 good, ≥ 0.65 moderate"
        verdict = _verdict(stability.passed) if gate is not None else _band(stability.mean_ari, ARI_BANDS)
        rows.append([f"Bootstrap ARI, mean of {len(stability.ari)}", _fmt(stability.mean_ari), guide, verdict])
        rows.append(["Bootstrap ARI, minimum", _fmt(stability.min_ari), "reported only", _info()])
    return rows


def _k_section(evaluation: Evaluation | None) -> str:
    if not evaluation:
        return ""
    choice = evaluation.k_choice
    rows = []
    for score in choice.scores:
        marks = {"used": score.k == choice.configured_k, "recommended": score.k == choice.recommended_k}
        ari = "—" if score.mean_ari is None else f"{score.mean_ari:.3f} ± {score.ari_se or 0.0:.3f}"
        rows.append([
            score.k, _fmt(score.prediction_strength, 2), _fmt(score.silhouette), _fmt(score.davies_bouldin),
            _fmt(score.calinski_harabasz, 1), ari, " / ".join(name for name, on in marks.items() if on),
        ])
    headers = ["k", "Prediction strength ↑", "Silhouette ↑", "Davies–Bouldin ↓", "Calinski–Harabasz ↑",
               "Bootstrap ARI ± SE ↑", ""]
    table = _table(headers, rows, numeric=range(6))
    use = (
        "The run uses the recommended k (<code>segments.k: auto</code>)."
        if choice.auto
        else "The run keeps the configured k; the recommendation is advice (<code>segments.k: auto</code> would use it)."
    )
    return (
        "<h2>Choice of k</h2><p>Each k clusters the neurons with the configured method. Prediction strength "
        "(Tibshirani and Walther) is the share of each segment's pairs of customers that the bootstrap maps keep "
        "together, on its worst segment: a k is reproducible at 0.8 or more. The indices are computed on the neuron "
        "weight vectors weighted by their hits, the ARI on the customers through the bootstrap maps. The recommended "
        f"k is the reproducible one with the best mean rank of the three indices. {use}</p>"
        + table
        + f"<p class=\"reason\"><strong>Recommended k = {choice.recommended_k}.</strong> {_esc(choice.reason)}</p>"
    )


def _stability_section(evaluation: Evaluation | None) -> str:
    stability = None if evaluation is None else evaluation.stability
    if not stability:
        return ""
    rows = [[i + 1, seed, _fmt(ari)] for i, (seed, ari) in enumerate(zip(stability.seeds, stability.ari))]
    return (
        "<h2>Stability</h2><p>The map and the clustering were retrained on bootstrap resamples of the training "
        "customers, each with its own seed; every sampled customer was then assigned through the resample's map. "
        "The adjusted Rand index compares those assignments with this run's (1 = identical, 0 = chance).</p>"
        + _table(["Resample", "Map seed", "Adjusted Rand index"], rows, numeric=range(3))
    )


def _map_section(figures: Mapping[str, Path]) -> str:
    body = "".join(_figure(figures, name) for name in ("u_matrix", "hit_map", "component_planes"))
    return f"<h2>The map</h2>{body}" if body else ""


def _quality_section(validation: dict[str, Any] | None) -> str:
    if validation is None:
        return "<h2>Data quality</h2><p>validation.json not found in the run folder.</p>"
    stats = validation.get("statistics", {})
    rows = [_expectation_row(result) for result in validation.get("results", [])]
    summary = (
        f"{_verdict(bool(validation.get('success')))} {stats.get('successful_expectations', '?')} of "
        f"{stats.get('evaluated_expectations', '?')} expectations met (suite {_esc(validation.get('suite_name', '?'))})."
    )
    return f"<h2>Data quality</h2><p>{summary}</p>" + _table(["Expectation", "Column", "Settings", "Outcome", "Met"], rows, raw={4})


def _expectation_row(result: dict[str, Any]) -> list[Any]:
    config = result.get("expectation_config", {})
    kwargs = {k: v for k, v in config.get("kwargs", {}).items() if k not in ("batch_id", "column")}
    outcome = result.get("result", {})
    if "unexpected_count" in outcome:
        detail = f"{outcome['unexpected_count']} unexpected of {outcome.get('element_count', '?')}"
    elif "observed_value" in outcome:
        detail = f"observed {outcome['observed_value']}"
    else:
        detail = ""
    settings = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    return [config.get("type", "?"), config.get("kwargs", {}).get("column", ""), settings, detail, _verdict(result.get("success"))]


# ---------------------------------------------------------------- HTML helpers


def _figure(figures: Mapping[str, Path], name: str) -> str:
    path = figures.get(name)
    if path is None:
        return ""
    guide = FIGURES[name]
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (
        f"<figure><img alt=\"{_esc(guide.title)}\" src=\"data:image/png;base64,{data}\">"
        f"<figcaption><strong>{_esc(guide.title)}.</strong> {_esc(guide.how_to_read)}</figcaption></figure>"
    )


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Collection[int] = (), raw: Collection[int] = ()
) -> str:
    """An HTML table; cells are escaped except in columns ``raw`` (already HTML)."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = (
            (_NUM_CELL if index in numeric else "<td>") + (value if index in raw else _esc(value)) + "</td>"
            for index, value in enumerate(row)
        )
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _verdict(passed: bool | None) -> str:
    if passed is None:
        return _info("not available")
    return "<span class=\"pass\">pass</span>" if passed else "<span class=\"fail\">FAIL</span>"


def _band(value: float | None, bands: Sequence[tuple[float, str]]) -> str:
    if value is None:
        return _info("not available")
    label = next(name for floor, name in bands if value >= floor)
    return f"<span class=\"guide\">{_esc(label)}</span>"


def _info(text: str = "—") -> str:
    return f"<span class=\"info\">{_esc(text)}</span>"


def _mean_sd(record: Mapping[str, Any], feature: str) -> str:
    mean, sd = record.get(f"{feature}_mean"), record.get(f"{feature}_sd")
    imputed = int(record.get(f"{feature}_imputed", 0) or 0)
    text = "—" if mean is None or mean != mean else f"{mean:.2f} ± {sd:.2f}" if sd == sd and sd is not None else f"{mean:.2f}"
    return text + (f" ({imputed:,})" if imputed else "")


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    return f"{value:,.{digits}f}" if isinstance(value, float) else str(value)


def _fmt_int(value: Any) -> str:
    return "?" if value is None else f"{int(value):,}"


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def _feature_names(config_text: str, profiles: pd.DataFrame) -> list[str]:
    config = yaml.safe_load(config_text) if config_text else None
    if isinstance(config, dict) and isinstance(config.get("features"), list):
        return [str(feature["name"]) for feature in config["features"]]
    return [column[: -len("_mean")] for column in profiles.columns if column.endswith("_mean")]


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; border-bottom: 2px solid #ccc; padding-bottom: .3em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1em 0; font-size: .92em; display: block; max-width: 100%; overflow-x: auto; }
th, td { border: 1px solid #ddd; padding: .3em .6em; text-align: left; vertical-align: top; }
thead th { background: #f3f3f3; }
table.facts th { background: #f8f8f8; width: 10em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #444; max-width: 60em; }
.pass { color: #fff; background: #2e7d32; padding: 0 .4em; border-radius: 3px; }
.fail { color: #fff; background: #c62828; padding: 0 .4em; border-radius: 3px; }
.guide { color: #1a4f8b; }
.info { color: #777; }
.note { font-size: .88em; color: #555; }
.reason { background: #f4f8fd; border-left: 4px solid #1a4f8b; padding: .5em .8em; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: .8em; overflow-x: auto; font-size: .85em; }
footer { margin-top: 3em; font-size: .85em; color: #777; }
"""
