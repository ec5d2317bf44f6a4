"""The saved model: everything scoring new customers needs, without retraining.

A bundle is a folder of plain files, never a pickle:

``model.json``
    Format name and version, id column, features (names, order, valid
    ranges), the cleaner's medians, means and scales, grid shape, the
    neuron-to-segment map, segment labels, the outlier threshold, training
    figures and the library versions that trained it.
``weights.npy``
    The codebook, float64, shape (rows, cols, n_features), NumPy ``.npy``
    format read with ``allow_pickle=False``.
``expectations.json``
    The Great Expectations suite the training data passed, so that scoring
    validates new data with the same contract.
``provenance.json``
    Which training run, input and config made the model, and when
    (:class:`somseg.results.Provenance`). Added as a training run publishes
    its outputs; a bundle from before has none, and reads as before.
``MANIFEST.json``
    SHA-256 of each file above; :meth:`SegmentationModel.load` refuses a
    bundle whose files do not match it.

A bundle's *version* is the time it was trained and a short digest of its
files (:func:`bundle_version`), ``20261130T020512Z-3fa9c2b1``: the name of
its folder in a model registry (:mod:`somseg.registry`), and what a scoring
run records.
"""

import hashlib
import json
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, ValidationError

from somseg.cleaning import FeatureCleaner, TrainingStatistics
from somseg.config import FeatureSpec, SegmentationConfig
from somseg.errors import ModelBundleError
from somseg.io import atomic_path, file_sha256, read_npy
from somseg.layout import MODEL_DIR
from somseg.metrics import UnitMatch, match_units
from somseg.results import MapFigures, Provenance, TrainingRecord

FORMAT_NAME = "somseg-model"
FORMAT_VERSION = 1
MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.npy"
SUITE_FILE = "expectations.json"
MANIFEST_FILE = "MANIFEST.json"
PROVENANCE_FILE = "provenance.json"
VERSION_DIGEST_CHARS = 8
_LIBRARIES = ("somseg", "numpy", "pandas", "pyarrow", "scikit-learn", "minisom")

SEGMENT_COLUMNS = ("bmu", "segment", "segment_label", "quantization_error", "is_outlier")


class _Schema(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CleanerParams(_Schema):
    """The fitted cleaner: training medians, means and scales, and the missing values imputed."""

    features: list[str]
    medians: list[float]
    mean: list[float]
    scale: list[float]
    n_imputed: list[int]
    transforms: list[Literal["none", "log1p", "signed_log1p", "robust", "quantile"]] | None = None
    quantiles: list[list[float] | None] | None = None
    blocks: list[list[int]] | None = None


class GridShape(_Schema):
    rows: int
    cols: int
    topology: Literal["rectangular"] = "rectangular"


class ModelMetadata(_Schema):
    """The schema of ``model.json``, version :data:`FORMAT_VERSION`."""

    format: Literal["somseg-model"]
    format_version: int
    id_column: str
    features: list[FeatureSpec]
    cleaner: CleanerParams
    grid: GridShape
    neuron_segment: list[int]
    labels: dict[str, str]
    outlier_threshold: float
    training: TrainingRecord
    config: dict[str, Any]
    libraries: dict[str, str]


@dataclass
class SegmentationModel:
    """A trained segmentation: cleaning, map, segments, labels and thresholds."""

    id_column: str
    features: list[FeatureSpec]
    cleaner: FeatureCleaner
    weights: np.ndarray
    neuron_segment: np.ndarray
    labels: dict[int, str]
    outlier_threshold: float
    suite: dict[str, Any]
    training: TrainingRecord
    config: dict[str, Any] = field(default_factory=dict)
    libraries: dict[str, str] = field(default_factory=lambda: library_versions())
    provenance: Provenance | None = None

    @property
    def feature_names(self) -> list[str]:
        """The model's feature columns (one per level of a categorical feature)."""
        return [column for feature in self.features for column in feature.columns]

    @property
    def grid_shape(self) -> tuple[int, int]:
        return int(self.weights.shape[0]), int(self.weights.shape[1])

    def match(self, X: np.ndarray) -> UnitMatch:
        """Best and second-best units of standardised rows ``X``."""
        return match_units(X, self.weights)

    def assign(self, ids: pd.Series, bmu: np.ndarray, distance: np.ndarray) -> pd.DataFrame:
        """The per-row output table from each row's best unit and its distance.

        Returns
        -------
        DataFrame
            The id column under its own name, then ``bmu``, ``segment``,
            ``segment_label``, ``quantization_error``, ``is_outlier``.
        """
        segment = self.neuron_segment[bmu]
        # Arrow gathers the label strings by segment number in C, rather
        # than building one Python string per row.
        names = pa.array([self.labels[s] for s in range(len(self.labels))], type=pa.large_string())
        return pd.DataFrame(
            {
                # The Series' own array: text ids stay in Arrow, rather than becoming one Python string per row.
                self.id_column: ids.array,
                "bmu": np.asarray(bmu, dtype=np.int64),
                "segment": segment,
                "segment_label": pd.array(names.take(pa.array(segment)), dtype=pd.StringDtype("pyarrow")),
                "quantization_error": np.asarray(distance, dtype=np.float64),
                "is_outlier": np.asarray(distance) > self.outlier_threshold,
            }
        )

    @classmethod
    def from_training(
        cls,
        config: SegmentationConfig,
        statistics: TrainingStatistics,
        weights: np.ndarray,
        neuron_segment: np.ndarray,
        labels: dict[int, str],
        segment_shares: list[float],
        figures: MapFigures,
        suite: dict[str, Any],
    ) -> "SegmentationModel":
        """The model a training run learnt: its cleaner, map, segments, labels and thresholds."""
        return cls(
            id_column=config.id_column,
            features=list(config.features),
            cleaner=statistics.cleaner,
            weights=np.asarray(weights, dtype=np.float64),
            neuron_segment=np.asarray(neuron_segment, dtype=np.int64),
            labels=dict(labels),
            outlier_threshold=figures.outlier_threshold,
            suite=suite,
            training=TrainingRecord(
                n_rows=figures.n_rows,
                quantization_error=figures.quantization_error,
                topographic_error=figures.topographic_error,
                segment_shares=list(segment_shares),
                feature_reference=statistics.feature_reference,
            ),
            config=config.model_dump(mode="json"),
        )

    @property
    def training_outlier_share(self) -> float:
        """The share of training rows flagged as outliers: above the ``outliers.percentile`` of their distances."""
        percentile = float(self.config.get("outliers", {}).get("percentile", 95.0))
        return 1.0 - percentile / 100.0

    def save(self, folder: str | Path) -> Path:
        """Write the bundle atomically to ``folder`` (replacing an older one)."""
        folder = Path(folder)
        with atomic_path(folder) as tmp:
            tmp.mkdir()
            (tmp / MODEL_FILE).write_text(self.metadata().model_dump_json(indent=2) + "\n", encoding="utf-8")
            with open(tmp / WEIGHTS_FILE, "wb") as handle:
                np.save(handle, np.ascontiguousarray(self.weights, dtype=np.float64), allow_pickle=False)
            (tmp / SUITE_FILE).write_text(json.dumps(self.suite, indent=2) + "\n", encoding="utf-8")
            if self.provenance is not None:
                _write_provenance(tmp, self.provenance)
            _write_manifest(tmp)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "SegmentationModel":
        """Read and verify a bundle.

        Raises
        ------
        ModelBundleError
            If a file is missing, a checksum does not match, or the format
            version is not one this release reads.
        """
        folder = Path(folder)
        manifest = _read_manifest(folder)
        _verify_checksums(folder, manifest)
        meta = _read_metadata(folder)
        weights = read_npy(folder / WEIGHTS_FILE)
        suite = json.loads((folder / SUITE_FILE).read_text(encoding="utf-8"))
        return cls(
            id_column=meta.id_column,
            features=list(meta.features),
            cleaner=FeatureCleaner.from_dict(meta.cleaner.model_dump()),
            weights=weights,
            neuron_segment=np.asarray(meta.neuron_segment, dtype=np.int64),
            labels={int(k): v for k, v in meta.labels.items()},
            outlier_threshold=meta.outlier_threshold,
            suite=suite,
            training=meta.training,
            config=meta.config,
            libraries=meta.libraries,
            provenance=_read_provenance(folder, manifest),
        )

    def library_mismatches(self) -> dict[str, tuple[str, str]]:
        """Libraries whose installed version differs from the training one: name -> (trained, installed)."""
        installed = library_versions()
        return {
            name: (version, installed.get(name, "not installed"))
            for name, version in self.libraries.items()
            if name != "python" and installed.get(name) != version
        }

    def metadata(self) -> ModelMetadata:
        """What ``model.json`` holds."""
        return ModelMetadata(
            format=FORMAT_NAME,
            format_version=FORMAT_VERSION,
            id_column=self.id_column,
            features=self.features,
            cleaner=CleanerParams.model_validate(self.cleaner.to_dict()),
            grid=GridShape(rows=self.grid_shape[0], cols=self.grid_shape[1]),
            neuron_segment=self.neuron_segment.tolist(),
            labels={str(k): v for k, v in sorted(self.labels.items())},
            outlier_threshold=self.outlier_threshold,
            training=self.training,
            config=self.config,
            libraries=self.libraries,
        )


@dataclass(frozen=True)
class BundleSource:
    """A model bundle folder and the digest of its files' content (what a cache is keyed on)."""

    path: str
    digest: str

    @classmethod
    def of(cls, folder: str | Path) -> "BundleSource":
        """Fingerprint the bundle at ``folder``.

        Raises
        ------
        ModelBundleError
            If ``folder`` is not a bundle of this format.
        """
        folder = Path(folder).resolve()
        _read_manifest(folder)
        digest = hashlib.sha256()
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            digest.update(path.name.encode())
            digest.update(file_sha256(path).encode())
        return cls(str(folder), digest.hexdigest())


def add_provenance(folder: str | Path, provenance: Provenance) -> None:
    """Write ``provenance.json`` into the bundle at ``folder`` and seal it in the manifest.

    The bundle is changed in place, file by file: call it on a copy that
    nobody reads yet (a run's staging folder), never on a published bundle.

    Parameters
    ----------
    folder : str or Path
        A bundle written by :meth:`SegmentationModel.save`.
    provenance : Provenance
        Which run, input and config made the model.
    """
    folder = Path(folder)
    _read_manifest(folder)
    _write_provenance(folder, provenance)
    _write_manifest(folder)


def config_sha256(config: dict[str, Any]) -> str:
    """SHA-256 of a config (its JSON form) as canonical JSON: sorted keys, no spaces."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def bundle_digest(folder: str | Path) -> str:
    """SHA-256 of a bundle's content: of its manifest's checksums, file by file in name order.

    Raises
    ------
    ModelBundleError
        If ``folder`` is not a bundle of this format.
    """
    manifest = _read_manifest(Path(folder))
    listed = sorted(manifest.get("sha256", {}).items())
    return hashlib.sha256("".join(f"{name}:{digest}\n" for name, digest in listed).encode()).hexdigest()


def version_name(trained_at: str, digest: str) -> str:
    """A version's name from when it was trained (ISO 8601) and its content digest: ``20261130T020512Z-3fa9c2b1``.

    Names sort by training time, and two bundles trained in the same second
    still differ by their digest.
    """
    from datetime import UTC, datetime

    moment = datetime.fromisoformat(trained_at)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment.strftime('%Y%m%dT%H%M%SZ')}-{digest[:VERSION_DIGEST_CHARS]}"


def bundle_version(folder: str | Path) -> str | None:
    """The version of the bundle at ``folder`` (:func:`version_name`); None for a bundle without provenance.

    Raises
    ------
    ModelBundleError
        If ``folder`` is not a bundle of this format, or its provenance is damaged.
    """
    folder = Path(folder)
    provenance = read_provenance(folder)
    return None if provenance is None else version_name(provenance.trained_at, bundle_digest(folder))


def scoring_metadata(version: str | None, provenance: Provenance | None) -> dict[str, str]:
    """The key-value metadata a scoring run writes into ``segments.parquet``: which model, trained by which run on what.

    Keys are ``somseg.model_version``, ``somseg.trained_at``,
    ``somseg.training_run_id``, ``somseg.training_input`` and
    ``somseg.training_input_sha256``; an unknown value (a bundle without
    provenance) is left out.
    """
    values = {"somseg.model_version": version}
    if provenance is not None:
        values |= {
            "somseg.trained_at": provenance.trained_at,
            "somseg.training_run_id": provenance.training_run_id,
            "somseg.training_input": provenance.input,
            "somseg.training_input_sha256": provenance.input_sha256,
        }
    return {key: value for key, value in values.items() if value is not None}


def read_provenance(folder: str | Path) -> Provenance | None:
    """The provenance of the bundle at ``folder``, checked against its manifest; None when it has none.

    Raises
    ------
    ModelBundleError
        If ``folder`` is not a bundle of this format, or ``provenance.json``
        does not match its checksum or its schema.
    """
    folder = Path(folder)
    return _read_provenance(folder, _read_manifest(folder))


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries a bundle's numbers depend on."""
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise ModelBundleError(f"model bundle {folder} does not exist or is not a folder")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        if (folder / MODEL_DIR / MANIFEST_FILE).is_file():
            raise ModelBundleError(f"{folder} is a training run folder, not a model bundle; give its model: "
                                   f"--model {folder / MODEL_DIR}") from exc
        raise ModelBundleError(f"model bundle {folder} has no {MANIFEST_FILE}; is it a somseg model folder?") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelBundleError(f"model bundle {folder}: {MANIFEST_FILE} is unreadable: {exc}") from exc
    if manifest.get("format") != FORMAT_NAME:
        raise ModelBundleError(f"model bundle {folder} is not a {FORMAT_NAME} bundle (format {manifest.get('format')!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelBundleError(
            f"model bundle {folder} has format version {manifest.get('format_version')!r}; "
            f"this release reads version {FORMAT_VERSION}. Retrain the model with this release."
        )
    return manifest


def _write_provenance(folder: Path, provenance: Provenance) -> None:
    (folder / PROVENANCE_FILE).write_text(provenance.model_dump_json(indent=2) + "\n", encoding="utf-8")


def _write_manifest(folder: Path) -> None:
    names = [MODEL_FILE, WEIGHTS_FILE, SUITE_FILE] + ([PROVENANCE_FILE] if (folder / PROVENANCE_FILE).is_file() else [])
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "sha256": {name: file_sha256(folder / name) for name in names},
    }
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _read_provenance(folder: Path, manifest: dict[str, Any]) -> Provenance | None:
    # Only a provenance the manifest seals counts: a stray file beside an older bundle is not its record.
    expected = manifest.get("sha256", {}).get(PROVENANCE_FILE)
    if expected is None:
        return None
    path = _sealed_file(folder, PROVENANCE_FILE, expected)
    try:
        return Provenance.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise ModelBundleError(f"model bundle {folder}: {PROVENANCE_FILE} is not a provenance record: {exc}") from exc


def _read_metadata(folder: Path) -> ModelMetadata:
    path = folder / MODEL_FILE
    try:
        meta = ModelMetadata.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise ModelBundleError(f"model bundle {folder}: {MODEL_FILE} does not match format {FORMAT_VERSION}: {problems}") from exc
    if meta.format_version != FORMAT_VERSION:
        raise ModelBundleError(
            f"model bundle {folder}: {MODEL_FILE} has format version {meta.format_version}; "
            f"this release reads version {FORMAT_VERSION}. Retrain the model with this release."
        )
    return meta


def _sealed_file(folder: Path, name: str, expected: str) -> Path:
    """The bundle's file ``name``, after checking it is there with the checksum the manifest gives."""
    path = folder / name
    if not path.is_file():
        raise ModelBundleError(f"model bundle {folder} is missing {name}")
    if file_sha256(path) != expected:
        raise ModelBundleError(
            f"model bundle {folder}: checksum of {name} does not match {MANIFEST_FILE}; "
            "the bundle is corrupted or was edited"
        )
    return path


def _verify_checksums(folder: Path, manifest: dict[str, Any]) -> None:
    for name, expected in manifest.get("sha256", {}).items():
        _sealed_file(folder, name, expected)
    for required in (MODEL_FILE, WEIGHTS_FILE, SUITE_FILE):
        if required not in manifest.get("sha256", {}):
            raise ModelBundleError(f"model bundle {folder}: {MANIFEST_FILE} lists no checksum for {required}")
