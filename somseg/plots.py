"""Pictures of a trained map and its segments, as PNG files.

Every figure is drawn with matplotlib's object-oriented API on an Agg
canvas, never through ``pyplot``: no global backend is switched, no window
is opened, and nothing is kept alive after saving, so the functions are safe
in worker processes and threads. Grids are drawn with row 0 at the top and
neurons numbered row-major, as ``bmu`` in ``segments.parquet``.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.patheffects import withStroke

from somseg.io import atomic_path, read_written
from somseg.model import SegmentationModel

DPI = 100
_ANNOTATE_MAX_CELLS = 400  # beyond a 20 x 20 grid, numbers in cells are unreadable
_OFFSETS_8 = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


@dataclass(frozen=True)
class FigureGuide:
    """Title of a figure and how to read it (shown under it in the report)."""

    title: str
    how_to_read: str


FIGURES: dict[str, FigureGuide] = {
    "segment_map": FigureGuide(
        "Segment map",
        "Each square is a neuron of the map, coloured by the segment it belongs to; the number in it is how many "
        "training customers it represents (blank: none). Customers are assigned to their closest neuron, so a "
        "segment's area is not its size: read sizes from the profiles table.",
    ),
    "profiles": FigureGuide(
        "Segment profiles",
        "One row per segment, one column per feature. The number is the segment's mean over observed values, in "
        "original units; the colour is how far it stands from the mean of all customers, in their standard "
        "deviations (red above, blue below). A segment is defined by its strongly coloured cells.",
    ),
    "u_matrix": FigureGuide(
        "U-matrix",
        "Mean distance (standardised units) from each neuron to its neighbours. Light valleys are groups of "
        "similar customers; dark ridges are where the data changes fast, natural borders between groups. Black "
        "lines are the segment borders: good segments follow the ridges.",
    ),
    "hit_map": FigureGuide(
        "Hit map (density)",
        "How many training customers each neuron represents. Dense regions are common customer types; neurons "
        "with no hits (dead) sit between groups or show an oversized map.",
    ),
    "component_planes": FigureGuide(
        "Component planes",
        "One map per feature: the feature's value at each neuron, in original units. Compare the planes with the "
        "segment map to see which features drive each segment; similar planes mean correlated features.",
    ),
}


@dataclass(frozen=True)
class MapView:
    """What the figures need from a run.

    Attributes
    ----------
    weights : ndarray of shape (rows, cols, n_features)
        Codebook in standardised units.
    planes : ndarray of shape (rows, cols, n_features)
        Codebook in original units (the cleaner's scaling undone).
    hits : ndarray of shape (rows * cols,)
        Training customers won by each neuron.
    neuron_segment : ndarray of shape (rows * cols,)
    labels : dict of int to str
    feature_names : list of str
    profiles : DataFrame
        ``profiles.parquet``: ``segment``, ``label``, ``size``,
        ``<feature>_mean``, ``<feature>_sd``, ``<feature>_imputed``.
    """

    weights: np.ndarray
    planes: np.ndarray
    hits: np.ndarray
    neuron_segment: np.ndarray
    labels: dict[int, str]
    feature_names: list[str]
    profiles: pd.DataFrame


def map_view(model: SegmentationModel, hits: np.ndarray, profiles: pd.DataFrame) -> MapView:
    """What the figures need, from a model, the training rows' hits per neuron and the profiles."""
    return MapView(
        weights=model.weights,
        planes=model.cleaner.inverse_transform(model.weights),
        hits=np.asarray(hits),
        neuron_segment=model.neuron_segment,
        labels=model.labels,
        feature_names=model.feature_names,
        profiles=profiles,
    )


def load_map_view(model_dir: str | Path, segments: str | Path, profiles: str | Path) -> MapView:
    """Read a model bundle, the per-customer segments and the profiles into a :class:`MapView`.

    Parameters
    ----------
    model_dir : str or Path
        A saved model bundle (verified against its manifest).
    segments : str or Path
        ``segments.parquet`` (a file or a folder of part files); only its
        ``bmu`` column is read.
    profiles : str or Path
        ``profiles.parquet``.

    Returns
    -------
    MapView
    """
    model = SegmentationModel.load(model_dir)
    bmu = read_written(segments, lambda path: pd.read_parquet(path, columns=["bmu"])["bmu"].to_numpy())
    n_neurons = model.weights.shape[0] * model.weights.shape[1]
    return map_view(model, np.bincount(bmu, minlength=n_neurons), read_written(profiles, pd.read_parquet))


def make_figures(view: MapView) -> dict[str, Figure]:
    """Every figure of :data:`FIGURES`, drawn (not yet saved)."""
    shape = view.weights.shape[:2]
    return {
        "segment_map": plot_segment_map(view.neuron_segment, view.labels, shape, view.hits),
        "profiles": plot_profiles(view.profiles, view.feature_names),
        "u_matrix": plot_u_matrix(view.weights, view.neuron_segment),
        "hit_map": plot_hit_map(view.hits, shape),
        "component_planes": plot_component_planes(view.planes, view.feature_names),
    }


def draw_figures(view: MapView, folder: str | Path) -> dict[str, Path]:
    """Draw every figure of :data:`FIGURES` into ``folder`` as PNG.

    Parameters
    ----------
    view : MapView
    folder : str or Path
        Created if missing; each file is written atomically.

    Returns
    -------
    dict of str to Path
        File of each figure, in the order of :data:`FIGURES`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return {name: save_png(figure, folder / f"{name}.png") for name, figure in make_figures(view).items()}


def save_png(figure: Figure, path: str | Path, dpi: int = DPI) -> Path:
    """Write ``figure`` as PNG atomically (Agg canvas) and return the path."""
    FigureCanvasAgg(figure)
    with atomic_path(path) as tmp:
        # "tight" grows the canvas to every artist, so no label is ever clipped.
        figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.1)
    return Path(path)


# ---------------------------------------------------------------- computations


def u_matrix(weights: np.ndarray) -> np.ndarray:
    """Mean Euclidean distance from each neuron to its (up to 8) grid neighbours.

    Parameters
    ----------
    weights : ndarray of shape (rows, cols, n_features)

    Returns
    -------
    ndarray of shape (rows, cols)
        In the units of ``weights``; 0 on a one-neuron map. Proportional to
        MiniSom's ``distance_map(scaling='mean')``, which divides by its max.
    """
    weights = np.asarray(weights, dtype=np.float64)
    rows, cols, n_features = weights.shape
    padded = np.full((rows + 2, cols + 2, n_features), np.nan)
    padded[1:-1, 1:-1] = weights
    distances = np.stack(
        [
            np.linalg.norm(padded[1 + dr : 1 + dr + rows, 1 + dc : 1 + dc + cols] - weights, axis=2)
            for dr, dc in _OFFSETS_8
        ]
    )
    if rows * cols == 1:
        return np.zeros((1, 1))
    return np.nanmean(distances, axis=0)


def segment_borders(neuron_segment: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Line segments between neighbouring cells of different segments, in image coordinates.

    Returns
    -------
    ndarray of shape (n_lines, 2, 2)
        ``[[x0, y0], [x1, y1]]`` per line; cell (r, c) spans
        x in [c - 0.5, c + 0.5] and y in [r - 0.5, r + 0.5].
    """
    grid = np.asarray(neuron_segment).reshape(shape)
    r, c = np.nonzero(grid[:, :-1] != grid[:, 1:])  # vertical borders, right of (r, c)
    vertical = np.stack([np.column_stack([c + 0.5, r - 0.5]), np.column_stack([c + 0.5, r + 0.5])], axis=1)
    r, c = np.nonzero(grid[:-1, :] != grid[1:, :])  # horizontal borders, below (r, c)
    horizontal = np.stack([np.column_stack([c - 0.5, r + 0.5]), np.column_stack([c + 0.5, r + 0.5])], axis=1)
    return np.concatenate([vertical, horizontal]).astype(float)


def segment_colors(k: int) -> list[tuple[float, float, float, float]]:
    """Distinct colours for ``k`` segments, the same in every figure."""
    palette = colormaps["tab10"] if k <= 10 else colormaps["tab20"] if k <= 20 else colormaps["hsv"]
    positions = np.arange(k) if k <= 20 else np.linspace(0, 1, k, endpoint=False)
    return [tuple(float(v) for v in palette(p)) for p in positions]


def population_means(profiles: pd.DataFrame, feature_names: Sequence[str]) -> pd.Series:
    """Mean of each feature over all observed values, recovered from the segment profiles."""
    means = {}
    for name in feature_names:
        observed = (profiles["size"] - profiles[f"{name}_imputed"]).to_numpy(dtype=float)
        values = profiles[f"{name}_mean"].to_numpy(dtype=float)
        present = observed > 0
        means[name] = float(np.average(values[present], weights=observed[present])) if present.any() else np.nan
    return pd.Series(means)


# ---------------------------------------------------------------- figures


def plot_u_matrix(weights: np.ndarray, neuron_segment: np.ndarray | None = None) -> Figure:
    """U-matrix heat map, with segment borders when ``neuron_segment`` is given."""
    figure, ax = _grid_figure(weights.shape[:2])
    image = ax.imshow(u_matrix(weights), cmap="bone_r", interpolation="nearest")
    figure.colorbar(image, ax=ax, shrink=0.85, label="mean distance to neighbours (standardised)")
    if neuron_segment is not None:
        _draw_borders(ax, neuron_segment, weights.shape[:2])
    ax.set_title("U-matrix")
    return figure


def plot_hit_map(hits: np.ndarray, shape: tuple[int, int]) -> Figure:
    """Customers per neuron; dead neurons (no hits) are marked with a cross."""
    figure, ax = _grid_figure(shape)
    grid = np.asarray(hits).reshape(shape)
    image = ax.imshow(grid, cmap="Blues", interpolation="nearest", vmin=0)
    figure.colorbar(image, ax=ax, shrink=0.85, label="training customers")
    _annotate(ax, grid, dark=grid > 0.6 * max(grid.max(), 1))
    dead_r, dead_c = np.nonzero(grid == 0)
    ax.scatter(dead_c, dead_r, marker="x", color="crimson", s=40, label="no hits")
    if len(dead_r):
        ax.legend(loc="upper left", bbox_to_anchor=(0, -0.08), frameon=False, fontsize=8)
    ax.set_title(f"Hit map ({int(np.sum(grid == 0))} dead of {grid.size} neurons)")
    return figure


def plot_component_planes(planes: np.ndarray, feature_names: Sequence[str]) -> Figure:
    """One heat map per feature of the codebook in original units."""
    rows, cols, n_features = planes.shape
    n_across = min(n_features, 3)
    n_down = int(np.ceil(n_features / n_across))
    figure = Figure(figsize=(n_across * 3.6, n_down * 3.2 + 0.4), layout="constrained")
    axes = np.atleast_1d(figure.subplots(n_down, n_across, squeeze=False)).ravel()
    for index, ax in enumerate(axes):
        if index >= n_features:
            ax.set_visible(False)
            continue
        image = ax.imshow(planes[:, :, index], cmap="viridis", interpolation="nearest")
        figure.colorbar(image, ax=ax, shrink=0.85)
        ax.set_title(str(feature_names[index]))
        _grid_ticks(ax, (rows, cols))
        # Every plane has the same grid: only the outer planes number it, so the planes stay
        # uncluttered and the layout measures a few tick labels instead of every plane's.
        if index % n_across:
            ax.tick_params(labelleft=False)
            ax.set_ylabel("")
        if index + n_across < n_features:
            ax.tick_params(labelbottom=False)
            ax.set_xlabel("")
    figure.suptitle("Component planes (original units)")
    return figure


def plot_segment_map(
    neuron_segment: np.ndarray,
    labels: Mapping[int, str],
    shape: tuple[int, int],
    hits: np.ndarray | None = None,
) -> Figure:
    """Neurons coloured by segment, borders drawn, a legend naming each segment."""
    k = max(int(np.max(neuron_segment)) + 1, len(labels))
    colors = segment_colors(k)
    longest = max((len(str(label)) for label in labels.values()), default=10)
    # The legend gets the width its longest entry needs (about 0.075 inch a character at 9 points, plus the count),
    # so long names widen the figure instead of squashing the map.
    figure, ax = _grid_figure(shape, width_extra=1.4 + 0.075 * (longest + 10))
    grid = np.asarray(neuron_segment).reshape(shape)
    ax.imshow(grid, cmap=ListedColormap(colors), vmin=-0.5, vmax=k - 0.5, interpolation="nearest")
    _draw_borders(ax, neuron_segment, shape)
    if hits is not None:
        counts = np.asarray(hits).reshape(shape)
        _annotate(ax, np.where(counts > 0, counts, np.nan), dark=np.zeros(shape, dtype=bool))
    sizes = np.bincount(grid.ravel(), weights=None if hits is None else np.asarray(hits).ravel(), minlength=k)
    handles = [
        Patch(color=colors[s], label=f"{s}  {labels.get(s, f'segment {s}')}" + (f" ({int(sizes[s]):,})" if hits is not None else ""))
        for s in range(k)
    ]
    # A figure legend placed "outside" is one constrained layout makes room for.
    figure.legend(handles=handles, loc="outside right center", frameon=False, fontsize=9)
    ax.set_title("Segment map")
    return figure


def plot_profiles(profiles: pd.DataFrame, feature_names: Sequence[str]) -> Figure:
    """A heatmap of the segments' profiles: one row per segment, one column per feature.

    The colour is how far the segment's mean stands from all customers' mean,
    in all customers' standard deviations (z); the number in the cell is the
    mean in original units. The figure grows with the features and the
    segments, and stays readable from 2 to 20 features.
    """
    k, n = len(profiles), len(feature_names)
    names = [str(v) for v in (profiles["label"] if "label" in profiles else profiles["segment"].map(lambda s: f"segment {s}"))]
    means = profiles[[f"{name}_mean" for name in feature_names]].to_numpy(dtype=float)
    centre = population_means(profiles, feature_names).to_numpy(dtype=float)
    spread = population_sds(profiles, feature_names).to_numpy(dtype=float)
    z = (means - centre) / np.where(spread > 0, spread, np.nan)
    finite = np.abs(z[np.isfinite(z)])
    limit = float(np.clip(finite.max() if finite.size else 1.0, 1.0, 3.0))
    longest = max((len(name) for name in feature_names), default=1)
    widest = min(max(map(len, names), default=1), 40)  # past 40 characters a label takes room from the cells rather than widening the figure
    figure = Figure(figsize=(2.0 + 0.07 * widest + 0.85 * n, 1.6 + 0.04 * longest + 0.42 * k),
                    layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(np.nan_to_num(z), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for row in range(k):
        for col in range(n):
            dark = np.isfinite(z[row, col]) and abs(z[row, col]) > 0.6 * limit
            ax.text(col, row, _short(means[row, col]), ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
    slanted = n > 4 or longest > 12
    ax.set_xticks(np.arange(n), [str(name) for name in feature_names], rotation=40 if slanted else 0,
                  ha="right" if slanted else "center", rotation_mode="anchor")
    ax.set_yticks(np.arange(k), names)
    figure.colorbar(image, ax=ax, shrink=0.8, label="segment mean − all customers' mean (sd)")
    figure.suptitle("Segment profiles: mean in original units; colour: distance from all customers")
    return figure


def population_sds(profiles: pd.DataFrame, feature_names: Sequence[str]) -> pd.Series:
    """Sample standard deviation of each feature over all observed values, pooled from the segment profiles."""
    means = population_means(profiles, feature_names)
    sds = {}
    for name in feature_names:
        observed = (profiles["size"] - profiles[f"{name}_imputed"]).to_numpy(dtype=float)
        present = observed > 0
        mean = profiles[f"{name}_mean"].to_numpy(dtype=float)[present]
        sd = np.nan_to_num(profiles[f"{name}_sd"].to_numpy(dtype=float)[present])
        count = observed[present]
        within = np.sum((count - 1) * sd**2)
        between = np.sum(count * (mean - means[name]) ** 2)
        total = count.sum()
        sds[name] = float(np.sqrt((within + between) / (total - 1))) if total > 1 else np.nan
    return pd.Series(sds)


def _short(value: float) -> str:
    """A mean as a cell holds it: three significant digits, thousands and millions as k and M."""
    if not np.isfinite(value):
        return "–"
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.3g}M"
    if magnitude >= 1e3:
        return f"{value / 1e3:.3g}k"
    return f"{value:.3g}"


def _grid_figure(shape: tuple[int, int], width_extra: float = 1.2) -> tuple[Figure, object]:
    rows, cols = shape
    side = 4.2
    figure = Figure(figsize=(side * cols / max(rows, cols) + width_extra, side * rows / max(rows, cols) + 0.8), layout="constrained")
    ax = figure.add_subplot()
    _grid_ticks(ax, shape)
    return figure, ax


def _grid_ticks(ax: object, shape: tuple[int, int]) -> None:
    rows, cols = shape
    step_r, step_c = max(1, rows // 10), max(1, cols // 10)
    ax.set_xticks(np.arange(0, cols, step_c))
    ax.set_yticks(np.arange(0, rows, step_r))
    ax.set_xlabel("column")
    ax.set_ylabel("row")


def _draw_borders(ax: object, neuron_segment: np.ndarray, shape: tuple[int, int]) -> None:
    ax.add_collection(LineCollection(segment_borders(neuron_segment, shape), colors="black", linewidths=2))


def _annotate(ax: object, grid: np.ndarray, dark: np.ndarray) -> None:
    """Write each cell's value in it (skipping NaN), on grids small enough to read."""
    if grid.size > _ANNOTATE_MAX_CELLS:
        return
    fontsize = 8 if max(grid.shape) <= 10 else 6
    for (r, c), value in np.ndenumerate(grid):  # one text artist per cell; at most 400
        if np.isfinite(value):
            colour, halo = ("white", "black") if dark[r, c] else ("black", "white")
            ax.text(
                c, r, f"{value:.0f}", ha="center", va="center", fontsize=fontsize, color=colour,
                path_effects=[withStroke(linewidth=2, foreground=halo, alpha=0.6)],
            )
