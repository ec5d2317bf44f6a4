"""Figures: the U-matrix and borders by brute force, PNG files for every figure."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from minisom import MiniSom

from somseg.plots import (
    FIGURES,
    MapView,
    draw_figures,
    plot_component_planes,
    plot_profiles,
    plot_segment_map,
    population_means,
    save_png,
    segment_borders,
    segment_colors,
    u_matrix,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _brute_u_matrix(weights: np.ndarray) -> np.ndarray:
    rows, cols, _ = weights.shape
    out = np.zeros((rows, cols))
    for r in range(rows):
        for c in range(cols):
            near = [
                np.linalg.norm(weights[r, c] - weights[r + dr, c + dc])
                for dr in (-1, 0, 1)
                for dc in (-1, 0, 1)
                if (dr or dc) and 0 <= r + dr < rows and 0 <= c + dc < cols
            ]
            out[r, c] = np.mean(near)
    return out


@pytest.mark.parametrize("shape", [(4, 5), (1, 3), (2, 2)])
def test_u_matrix_equals_brute_force(shape: tuple[int, int]) -> None:
    weights = np.random.default_rng(0).normal(size=(*shape, 3))

    np.testing.assert_allclose(u_matrix(weights), _brute_u_matrix(weights), rtol=1e-12)


def test_u_matrix_is_proportional_to_minisom_distance_map() -> None:
    weights = np.random.default_rng(1).normal(size=(4, 5, 3))
    som = MiniSom(4, 5, 3, random_seed=0)
    som._weights = weights.copy()  # MiniSom has no setter; the attribute is what distance_map reads

    ours = u_matrix(weights)

    np.testing.assert_allclose(ours / ours.max(), som.distance_map(scaling="mean"), rtol=1e-12)
    assert u_matrix(np.zeros((1, 1, 2))).tolist() == [[0.0]]


def test_segment_borders_separate_different_neighbours_only() -> None:
    segments = np.array([[0, 1, 1], [0, 0, 1]]).ravel()

    lines = segment_borders(segments, (2, 3))

    # Borders: right of (0,0), right of (1,1), below (0,1).
    expected = {((0.5, -0.5), (0.5, 0.5)), ((1.5, 0.5), (1.5, 1.5)), ((0.5, 0.5), (1.5, 0.5))}
    assert {tuple(map(tuple, line)) for line in lines.tolist()} == expected
    assert segment_borders(np.zeros(6, dtype=int), (2, 3)).shape == (0, 2, 2)


@pytest.mark.parametrize("k", [1, 4, 12, 25])
def test_segment_colors_are_distinct(k: int) -> None:
    colors = segment_colors(k)

    assert len(colors) == k and len(set(colors)) == k


def test_population_means_recover_the_observed_means(profiles) -> None:
    raw = pd.DataFrame({"a": [1.0, 2.0, np.nan, 10.0, 11.0], "b": [5.0, np.nan, np.nan, 1.0, 3.0]})

    means = population_means(profiles(raw, np.array([0, 0, 0, 1, 1]), ["a", "b"], 2), ["a", "b"])

    assert means["a"] == pytest.approx(raw["a"].mean()) and means["b"] == pytest.approx(raw["b"].mean())


def _view(
    profiles_of: Callable, rows: int = 3, cols: int = 4, k: int = 3, features: tuple[str, ...] = ("Age", "Income")
) -> MapView:
    rng = np.random.default_rng(2)
    n = rows * cols
    neuron_segment = np.arange(n) % k
    raw = pd.DataFrame(rng.normal(40, 10, size=(60, len(features))), columns=list(features))
    profiles = profiles_of(raw, np.arange(60) % k, list(features), k)
    profiles.insert(1, "label", [f"Segment <{s}>" for s in range(k)])
    weights = rng.normal(size=(rows, cols, len(features)))
    hits = rng.integers(0, 9, n)
    hits[0] = 0
    return MapView(
        weights=weights, planes=weights * 10 + 40, hits=hits, neuron_segment=neuron_segment,
        labels={s: f"Segment <{s}>" for s in range(k)}, feature_names=list(features), profiles=profiles,
    )


def test_draw_figures_writes_every_png(tmp_path: Path, profiles: Callable) -> None:
    paths = draw_figures(_view(profiles), tmp_path / "figures")

    assert list(paths) == list(FIGURES)
    for path in paths.values():
        assert path.read_bytes().startswith(PNG_SIGNATURE)
        assert 2_000 < path.stat().st_size < 300_000
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == sorted(f"{name}.png" for name in FIGURES)


@pytest.mark.parametrize("n_features", [1, 4])
def test_component_planes_lay_out_any_number_of_features(tmp_path: Path, n_features: int) -> None:
    names = [f"f{i}" for i in range(n_features)]
    planes = np.random.default_rng(0).normal(size=(2, 3, n_features))

    figure = plot_component_planes(planes, names)

    assert [ax.get_title() for ax in figure.axes if ax.get_visible() and ax.get_title()] == names
    assert save_png(figure, tmp_path / "planes.png").read_bytes().startswith(PNG_SIGNATURE)


def test_segment_map_and_profiles_name_every_segment(profiles: Callable) -> None:
    view = _view(profiles, k=12, rows=4, cols=4)

    legend = plot_segment_map(view.neuron_segment, view.labels, (4, 4), view.hits).legends[0]
    profile_ticks = [t.get_text() for t in plot_profiles(view.profiles, view.feature_names).axes[0].get_yticklabels()]

    assert [t.get_text().split("  ")[1].split(" (")[0] for t in legend.get_texts()] == [view.labels[s] for s in range(12)]
    assert profile_ticks == [view.labels[s] for s in range(12)]


def test_the_profile_heatmap_colours_z_scores_and_writes_raw_means(profiles: Callable) -> None:
    from somseg.plots import population_sds

    raw = pd.DataFrame({"Income": [10.0, 20.0, 30.0, 1000.0, 2000.0, 3000.0], "Age": [20.0, 30.0, 40.0, 50.0, np.nan, 70.0]})
    table = profiles(raw, np.array([0, 0, 0, 1, 1, 1]), ["Income", "Age"], 2)
    sds = population_sds(table, ["Income", "Age"])
    assert sds["Income"] == pytest.approx(raw["Income"].std()) and sds["Age"] == pytest.approx(raw["Age"].std())

    figure = plot_profiles(table, ["Income", "Age"])
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.texts] == ["20", "30", "2k", "60"]
    z = ax.images[0].get_array()
    assert z[0, 0] < 0 < z[1, 0] and z[0, 0] == pytest.approx((20 - raw["Income"].mean()) / raw["Income"].std())


def test_seventeen_features_and_long_labels_make_a_figure_that_fits_a_page(profiles: Callable) -> None:
    rng = np.random.default_rng(2)
    names = [f"CREDIT_FEATURE_NUMBER_{i}" for i in range(17)]
    raw = pd.DataFrame(rng.lognormal(5, 1, (60, 17)), columns=names)
    table = profiles(raw, np.repeat(np.arange(6), 10), names, 6)
    table["label"] = [f"High CREDIT_FEATURE_NUMBER_{i}, Low CREDIT_FEATURE_NUMBER_{i + 1}" for i in range(6)]

    width, height = plot_profiles(table, names).get_size_inches()

    assert width <= 21 and height <= 6, (width, height)


def test_long_segment_names_widen_the_segment_map_not_squash_it() -> None:
    neuron_segment = np.repeat(np.arange(4), 4)
    short = plot_segment_map(neuron_segment, {s: f"S{s}" for s in range(4)}, (4, 4), np.ones(16))
    long = plot_segment_map(neuron_segment, {s: f"High PURCHASES_INSTALLMENTS_FREQUENCY, Low BALANCE {s}" for s in range(4)},
                            (4, 4), np.ones(16))
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    def map_width(figure) -> float:  # inches the map itself gets once laid out
        FigureCanvasAgg(figure).draw()
        return figure.axes[0].get_position().width * figure.get_size_inches()[0]

    assert long.get_size_inches()[0] > short.get_size_inches()[0] + 2
    assert map_width(long) >= 0.9 * map_width(short)
