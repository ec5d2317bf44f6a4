"""The report's pictures: U-matrix, hit map, component planes, segment map and profile chart."""

from typing import Any

from somseg.plots import make_figures, map_view
from somseg.results import MapFigures
from somseg.tasks.catalog import FiguresArtifact, ModelArtifact, Profiles, Store, step


@step("draw-figures", saves=FiguresArtifact)
def draw_figures(store: Store, model: ModelArtifact, figures: MapFigures, profiles: Profiles) -> dict[str, Any]:
    """Draw every figure of the run report (saved as PNG)."""
    return make_figures(map_view(model.load(), figures.hits, profiles.load()))
