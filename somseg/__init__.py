"""somseg: customer segmentation with Self-Organizing Maps.

The pure core of the pipeline. Nothing in this package imports Prefect or
Great Expectations: orchestration lives in ``tasks/`` and ``flows/``.
"""

from somseg.errors import (
    ConfigError,
    DataError,
    DataQualityError,
    DriftError,
    ModelBundleError,
    QualityGateError,
    SomsegError,
)

__all__ = [
    "ConfigError",
    "DataError",
    "DataQualityError",
    "DriftError",
    "ModelBundleError",
    "QualityGateError",
    "SomsegError",
]

__version__ = "0.1.0"
