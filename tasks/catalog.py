"""The catalogue: each step's outputs, where they live, and the one binding that names them.

A step is declared once, with :func:`step`. Its bound arguments are its
*binding*; one digest of the binding (the step's name and source, the core's
source, and every argument, where an artifact stands for its own key) is
both Prefect's cache key for the step and the name of the folder the step
writes to, ``<work_dir>/artifacts/<step>/<digest>/``. No task assembles a
path or lists its inputs for a key: the two cannot disagree, and a cached
result always points at the files the same binding wrote.

Outputs are typed artifacts (:class:`Artifact` and its subclasses, in the
spirit of Kedro's catalog and Dagster's IO managers): a step returns a value,
its declared artifact type saves the value into the step's folder and the
task hands the artifact on; the next step loads it with ``load()``. An
artifact's key is the digest of the binding that wrote it, so downstream
keys follow lineage without hashing large files again. Only raw inputs are
hashed by content (:class:`somseg.dataset.SourcePart` carries the digest).

Files are written to a temporary folder renamed into place when complete;
a folder without its completion marker is never used. If a step's folder
has been deleted while Prefect still holds its result, the step runs again
rather than hand on paths to missing files.
"""

import dataclasses
import fcntl
import functools
import hashlib
import inspect
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE, CachePolicy
from prefect.context import TaskRunContext
from pydantic import BaseModel

import somseg
from somseg.assessment import MapPartial
from somseg.batch_som import TrainingBlock, take_rows
from somseg.cleaning import FeatureCleaner, ImputedPartition, ScalingPartial, TrainingStatistics
from somseg.dataset import Partition, SourcePart, feature_columns, feature_values
from somseg.errors import DataError
from somseg.io import (
    atomic_path,
    discard,
    mapped_arrow_table,
    named_write_errors,
    read_npy,
    write_arrow_table,
    write_json,
    write_npy,
)
from somseg.layout import MODEL_DIR
from somseg.metrics import UnitMatch
from somseg.model import SegmentationModel
from somseg.quality import BucketedValues
from somseg.scoring import ScoreSummary
from somseg.stats import CoMoments
from somseg.tasks.retries import IO_RETRIES, IO_RETRY_DELAYS, retry_on_io_error
from somseg.validity import InvalidRows

DONE_MARKER = "_DONE"
ARTIFACTS_DIR = "artifacts"
GC_LOCK = ".gc.lock"
Arr = TypeVar("Arr", bound="ArrayArtifact")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Store:
    """The root folder of the catalogue (a run's ``work_dir``): shared storage in Dask mode."""

    root: Path

    @classmethod
    def at(cls, work_dir: str | Path) -> "Store":
        return cls(Path(work_dir).resolve())

    def folder(self, step_name: str, key: str) -> Path:
        """The folder a step's binding ``key`` writes to."""
        return self.root / ARTIFACTS_DIR / step_name / key[:32]

    @contextmanager
    def in_use(self) -> Iterator[None]:
        """Hold the work folder for a run: :func:`collect_garbage` waits for no run, it refuses to start."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / GC_LOCK, "a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)
            yield


# --- artifacts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifact:
    """Files a step wrote: its binding ``key`` and its ``folder``."""

    key: str
    folder: Path


@dataclass(frozen=True)
class TablePart(Artifact):
    """One partition of the ingested input: the id column and the raw features, as Arrow IPC.

    ``profile`` is the cleaning learner's first-pass result on the partition
    when the ingest was asked for it (training), else None (scoring).
    ``invalid`` is the row screen's partial result and ``rejected`` the file
    of its records of invalid values (:mod:`somseg.validity`), when the
    ingest screened the partition; ``n_rows`` counts the rows kept.
    """

    name: str
    n_rows: int
    profile: Any = None
    invalid: InvalidRows | None = None
    rejected: str | None = None

    @property
    def path(self) -> Path:
        return self.folder / self.name

    @property
    def rejected_path(self) -> Path | None:
        """The records of the partition's invalid values (Arrow IPC: id, column, value, reason), if screened."""
        return None if self.rejected is None else self.folder / self.rejected

    def load(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        with mapped_arrow_table(self.path, columns) as table:
            return table.to_pandas()

    def features(self, names: Sequence[str], order: str = "C", rows: np.ndarray | None = None) -> np.ndarray:
        """The raw features, as a new float64 array (n_rows, n_features), NaN where missing; ``order`` 'F': column-major.

        ``rows``: only the rows at these sorted positions, taken before any conversion.
        """
        with mapped_arrow_table(self.path, names) as table:
            if rows is not None:
                table = table.take(rows)
            return feature_values(table, names, order)

    @contextmanager
    def feature_columns(self, names: Sequence[str]) -> Iterator[list[np.ndarray]]:
        """The raw features, one array per feature, NaN where missing, read where the file lies: valid inside the block."""
        with mapped_arrow_table(self.path, names) as table:
            yield feature_columns(table, names)

    @classmethod
    def save(cls, partitions: list[Partition], folder: Path, key: str) -> list["TablePart"]:
        parts = []
        for index, partition in enumerate(partitions):
            name = f"part-{index:05d}.arrow"
            write_arrow_table(folder / name, partition.table)
            rejected = None
            if partition.rejected is not None:
                rejected = f"rejected-{index:05d}.arrow"
                write_arrow_table(folder / rejected, partition.rejected)
            parts.append(cls(f"{key}.{index}", folder, name, partition.table.num_rows, partition.partial,
                             partition.invalid, rejected))
        return parts


@dataclass(frozen=True)
class ValidatedPart(Artifact):
    """A partition's validation result, and its values of each unique column ordered by hash bucket.

    See :func:`somseg.quality.bucket_values`: bucket ``b`` of every
    partition together holds all rows whose value hashes to ``b``.
    """

    counts: dict[str, tuple[int, int]]  # column -> (rows, missing)

    def report(self) -> dict[str, Any]:
        """The partition's Great Expectations result (JSON form)."""
        return json.loads((self.folder / "validation.json").read_text(encoding="utf-8"))

    def bucket(self, column: str, index: int) -> tuple[pa.Array, np.ndarray]:
        """Bucket ``index`` of the partition's values of ``column``, and their hashes."""
        offsets = read_npy(self.folder / f"{column}.offsets.npy")
        start, stop = int(offsets[index]), int(offsets[index + 1])
        hashes = np.array(read_npy(self.folder / f"{column}.hashes.npy", mmap=True)[start:stop])
        with mapped_arrow_table(self.folder / f"{column}.values.arrow") as table:
            chosen = table.slice(start, stop - start).column(0)
            # A copy: the memory map closes with this block.
            return (pa.concat_arrays(chosen.chunks) if chosen.num_chunks else pa.array([], chosen.type)), hashes

    @classmethod
    def save(cls, value: tuple[dict[str, Any], dict[str, BucketedValues]], folder: Path, key: str) -> "ValidatedPart":
        report, buckets = value
        write_json(folder / "validation.json", report)
        for column, bucketed in buckets.items():
            write_arrow_table(folder / f"{column}.values.arrow", pa.table({"value": pa.Array.from_pandas(bucketed.values)}))
            write_npy(folder / f"{column}.offsets.npy", bucketed.offsets)
            write_npy(folder / f"{column}.hashes.npy", bucketed.hashes)
        counts = {column: (bucketed.n_rows, bucketed.n_missing) for column, bucketed in buckets.items()}
        return cls(key, folder, counts)


@dataclass(frozen=True)
class JsonDocument(Artifact):
    """A JSON document (a validation result, an evaluation)."""

    FILE: ClassVar[str] = "document.json"

    def load(self) -> dict[str, Any]:
        return json.loads((self.folder / self.FILE).read_text(encoding="utf-8"))

    @property
    def path(self) -> Path:
        return self.folder / self.FILE

    @classmethod
    def save(cls, value: dict[str, Any] | BaseModel, folder: Path, key: str) -> "JsonDocument":
        payload = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        write_json(folder / cls.FILE, payload)
        return cls(key, folder)


@dataclass(frozen=True)
class Cleaning(Artifact):
    """The fitted cleaner and the training deciles (the drift reference)."""

    n_rows: int

    def load(self) -> TrainingStatistics:
        cleaner = FeatureCleaner.from_dict(json.loads((self.folder / "cleaner.json").read_text(encoding="utf-8")))
        reference = json.loads((self.folder / "reference.json").read_text(encoding="utf-8"))
        return TrainingStatistics(cleaner, reference, self.n_rows)

    @classmethod
    def save(cls, value: TrainingStatistics, folder: Path, key: str) -> "Cleaning":
        write_json(folder / "cleaner.json", value.cleaner.to_dict())
        write_json(folder / "reference.json", value.feature_reference)
        return cls(key, folder, value.n_rows)


@dataclass(frozen=True)
class ImputedPart(Artifact):
    """A partition through the last cleaning pass: its partial result, co-moments and training block.

    Only a deduplicated block is written (imputed ``rows.npy`` and
    ``weight.npy``); otherwise the block is the partition itself, read from
    its :class:`TablePart`. Either way rows are standardised as they are
    loaded, with the fitted cleaner.
    """

    table: TablePart
    n_rows: int
    block_rows: int
    deduplicated: bool
    moments: CoMoments
    partial: ScalingPartial

    def matrix(self, cleaner: FeatureCleaner) -> np.ndarray:
        """Every row of the partition, imputed and standardised."""
        return cleaner.transform_values(self.table.features(cleaner.features))

    def imputed_block(self, cleaner: FeatureCleaner) -> TrainingBlock:
        """The rows to train on, imputed but not standardised."""
        if self.deduplicated:
            return TrainingBlock(read_npy(self.folder / "rows.npy"), read_npy(self.folder / "weight.npy"))
        return TrainingBlock(cleaner.impute_values(self.table.features(cleaner.features)))

    @property
    def weighted(self) -> bool:
        return self.deduplicated

    def rows(self, cleaner: FeatureCleaner, positions: np.ndarray) -> np.ndarray:
        """The block's rows at sorted ``positions``, standardised (an unweighted block's: the partition's rows)."""
        return cleaner.transform_values(self.table.features(cleaner.features, rows=positions))

    def block(self, cleaner: FeatureCleaner) -> TrainingBlock:
        """The rows to train on, standardised."""
        if not self.deduplicated:
            return TrainingBlock(self.matrix(cleaner))
        imputed = self.imputed_block(cleaner)
        return TrainingBlock(cleaner.standardise_values(imputed.rows), imputed.weight)

    @classmethod
    def save(cls, value: tuple[ImputedPartition, TablePart], folder: Path, key: str) -> "ImputedPart":
        imputed, table = value
        deduplicated = imputed.block.weight is not None
        if deduplicated:
            write_npy(folder / "rows.npy", imputed.block.rows)
            write_npy(folder / "weight.npy", imputed.block.weight)
        return cls(key, folder, table, table.n_rows, imputed.block.n_rows, deduplicated, imputed.moments, imputed.partial)


@dataclass(frozen=True)
class PackedBlock(Artifact):
    """Imputed training blocks of several partitions joined into one (:func:`somseg.batch_som.join_blocks`)."""

    n_rows: int
    weighted: bool

    def rows(self, cleaner: FeatureCleaner, positions: np.ndarray) -> np.ndarray:
        """The block's rows at sorted ``positions``, standardised; only their pages of the file are read."""
        return cleaner.standardise_values(take_rows(np.load(self.folder / "rows.npy", mmap_mode="r"), positions))

    def block(self, cleaner: FeatureCleaner) -> TrainingBlock:
        """The rows to train on, standardised."""
        weight = read_npy(self.folder / "weight.npy") if self.weighted else None
        return TrainingBlock(cleaner.standardise_values(read_npy(self.folder / "rows.npy")), weight)


BlockSource = ImputedPart | PackedBlock


@dataclass(frozen=True)
class PackedBlocks(Artifact):
    """The blocks an epoch runs over: joined blocks, or a partition's own where it stands alone.

    ``first_parts`` holds the index of each block's first partition: the block's rows start where that
    partition's rows start in the table.
    """

    blocks: tuple[BlockSource, ...]
    first_parts: tuple[int, ...]

    @classmethod
    def save(
        cls, value: tuple[list[ImputedPart | TrainingBlock], list[int]], folder: Path, key: str
    ) -> "PackedBlocks":
        items, first_parts = value
        if len(items) != len(first_parts):
            raise ValueError(f"{len(items)} blocks but {len(first_parts)} first partitions")
        blocks: list[BlockSource] = []
        for index, item in enumerate(items):
            if isinstance(item, ImputedPart):
                blocks.append(item)
                continue
            sub = folder / f"block-{index:05d}"
            sub.mkdir()
            write_npy(sub / "rows.npy", item.rows)
            if item.weight is not None:
                write_npy(sub / "weight.npy", item.weight)
            blocks.append(PackedBlock(f"{key}.{index}", sub, item.n_rows, item.weight is not None))
        return cls(key, folder, tuple(blocks), tuple(first_parts))


@dataclass(frozen=True)
class ArrayArtifact(Artifact):
    """One array, in the ``.npy`` file its type names."""

    FILE: ClassVar[str]

    def load(self) -> np.ndarray:
        return read_npy(self.folder / self.FILE)

    @classmethod
    def save(cls: type[Arr], value: np.ndarray, folder: Path, key: str) -> Arr:
        write_npy(folder / cls.FILE, value)
        return cls(key, folder)


@dataclass(frozen=True)
class Weights(ArrayArtifact):
    """A trained codebook, shape (rows, cols, n_features)."""

    FILE: ClassVar[str] = "weights.npy"


@dataclass(frozen=True)
class MatchPart(Artifact):
    """A partition's best and second-best units and distances, and its sums for the map's figures."""

    partial: MapPartial

    def load(self) -> UnitMatch:
        return UnitMatch(read_npy(self.folder / "bmu.npy"), read_npy(self.folder / "second.npy"), self.distances())

    def distances(self) -> np.ndarray:
        return read_npy(self.folder / "distance.npy")

    @classmethod
    def save(cls, value: tuple[UnitMatch, MapPartial], folder: Path, key: str) -> "MatchPart":
        match, partial = value
        write_npy(folder / "bmu.npy", match.bmu)
        write_npy(folder / "second.npy", match.second)
        write_npy(folder / "distance.npy", match.distance)
        return cls(key, folder, partial)


@dataclass(frozen=True)
class NeuronSegments(ArrayArtifact):
    """The segment of each neuron (row-major)."""

    FILE: ClassVar[str] = "neuron_segment.npy"


@dataclass(frozen=True)
class Profiles(Artifact):
    """Segment profiles (``profiles.parquet``) and the label of each segment."""

    labels: dict[int, str]

    @property
    def path(self) -> Path:
        return self.folder / "profiles.parquet"

    def load(self) -> pd.DataFrame:
        return pd.read_parquet(self.path)

    @classmethod
    def save(cls, value: tuple[pd.DataFrame, dict[int, str]], folder: Path, key: str) -> "Profiles":
        profiles, labels = value
        profiles.to_parquet(folder / "profiles.parquet", index=False)
        return cls(key, folder, dict(labels))


@dataclass(frozen=True)
class ModelArtifact(Artifact):
    """A model bundle (``model/``)."""

    @property
    def path(self) -> Path:
        return self.folder / MODEL_DIR

    def load(self) -> SegmentationModel:
        return SegmentationModel.load(self.path)

    @classmethod
    def save(cls, value: SegmentationModel, folder: Path, key: str) -> "ModelArtifact":
        value.save(folder / MODEL_DIR)
        return cls(key, folder)


@dataclass(frozen=True)
class SegmentsPart(Artifact):
    """A partition's segments (the schema of ``segments.parquet``) and its sums."""

    summary: ScoreSummary

    @property
    def path(self) -> Path:
        return self.folder / "segments.parquet"

    @classmethod
    def save(
        cls,
        value: tuple[pd.DataFrame, ScoreSummary] | tuple[pd.DataFrame, ScoreSummary, dict[str, str]],
        folder: Path,
        key: str,
    ) -> "SegmentsPart":
        """Write the rows, with the Parquet key-value metadata a third item gives (which model scored them)."""
        from somseg.io import write_parquet
        from somseg.layout import SEGMENTS_DICTIONARY_COLUMNS

        frame, summary = value[0], value[1]
        metadata = value[2] if len(value) > 2 else None
        write_parquet(folder / "segments.parquet", frame, SEGMENTS_DICTIONARY_COLUMNS, metadata)
        return cls(key, folder, summary)


@dataclass(frozen=True)
class FiguresArtifact(Artifact):
    """The report's pictures, one PNG per figure (``<name>.png``)."""

    @classmethod
    def save(cls, value: dict[str, Any], folder: Path, key: str) -> "FiguresArtifact":
        from somseg.plots import save_png

        for name, figure in value.items():
            save_png(figure, folder / f"{name}.png")
        return cls(key, folder)


# --- the binding --------------------------------------------------------------------------------


def binding_key(step_name: str, source: str, arguments: dict[str, Any]) -> str:
    """The digest of a step's binding: name, source, core source and canonical arguments."""
    canonical = {name: _canonical(value) for name, value in arguments.items() if not isinstance(value, Store)}
    text = json.dumps([step_name, source, core_source_digest(), canonical], sort_keys=True, default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, Artifact):
        return {"artifact": type(value).__name__, "key": value.key}
    if isinstance(value, SourcePart):
        return {"source": value.kind, "row_groups": list(value.row_groups), "digest": value.digest}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value)
        return {"ndarray": str(data.dtype), "shape": list(data.shape), "sha256": hashlib.sha256(data.tobytes()).hexdigest()}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, FeatureCleaner):
        return {"FeatureCleaner": value.to_dict()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {type(value).__name__: {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, dict):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    if isinstance(value, Path):
        raise TypeError(f"a step argument is a bare path ({value}); pass an artifact or a source part")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"a step argument of type {type(value).__name__} has no canonical form for a cache key")


@lru_cache(maxsize=1)
def core_source_digest() -> str:
    """Digest of the core package's source: a new algorithm invalidates every cached step."""
    root = Path(somseg.__file__).parent
    digest = hashlib.sha256(somseg.__version__.encode())
    for path in sorted(root.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _source_digest(fn: Callable[..., Any]) -> str:
    return hashlib.sha256(inspect.getsource(fn).encode("utf-8")).hexdigest()


@dataclass
class StepCachePolicy(CachePolicy):
    """Prefect's key for a step: the digest of its binding (:func:`binding_key`)."""

    step_name: str = ""
    source: str = ""
    saves: bool = False

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str | None:
        key = binding_key(self.step_name, self.source, inputs)
        store = next((value for value in inputs.values() if isinstance(value, Store)), None)
        if self.saves and store is not None and _is_stale(task_ctx, key, store.folder(self.step_name, key)):
            return f"{key}-rebuild-{uuid.uuid4().hex}"
        return key


def _is_stale(task_ctx: TaskRunContext, key: str, folder: Path) -> bool:
    """A stored result whose folder was deleted would hand on paths to missing files."""
    if is_complete(folder):
        return False
    store = task_ctx.result_store
    return store is not None and store.exists(key)


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` was fully written; a complete folder is marked as used now (what garbage collection reads)."""
    marker = folder / DONE_MARKER
    try:
        os.utime(marker)
    except FileNotFoundError:
        return False
    except OSError:  # a read-only work folder can still be read from
        return marker.is_file()
    return True


@dataclass(frozen=True)
class Collected:
    """What :func:`collect_garbage` removed (or, in a dry run, would remove)."""

    step_folders: int
    leftovers: int
    results: int
    bytes: int


def collect_garbage(work_dir: str | Path, older_than: timedelta, result_storage: Path | None,
                    dry_run: bool = False) -> Collected:
    """Remove the step folders no run has used for ``older_than``, and what killed runs left half-written.

    A step folder's last use is when a run last wrote it or found it in the
    cache (the mtime of its completion marker). Only folders of the
    catalogue's own layout are touched (``artifacts/<step>/<key>/`` with
    their marker, and the temporary ``.<key>.tmp-*`` folders a killed run
    leaves, once older than ``older_than`` too); and in ``result_storage``
    (Prefect's result store), the cached results of the removed folders'
    keys, so that the store shrinks with them. A step whose folder was
    removed is computed again by the next run that needs it.

    Raises
    ------
    DataError
        If a run is using the work folder (it holds it with :meth:`Store.in_use`).
    """
    root = Path(work_dir).resolve()
    artifacts = root / ARTIFACTS_DIR
    if not artifacts.is_dir():
        return Collected(0, 0, 0, 0)
    cutoff = time.time() - older_than.total_seconds()
    with open(root / GC_LOCK, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(f"work folder {root} is in use by a run; collect garbage when no run is going") from None
        stale, leftovers = [], []
        for step_folder in sorted(p for p in artifacts.iterdir() if p.is_dir()):
            for folder in step_folder.iterdir():
                if folder.name.startswith(".") and ".tmp-" in folder.name:
                    if folder.lstat().st_mtime < cutoff:
                        leftovers.append(folder)
                elif (folder / DONE_MARKER).is_file() and (folder / DONE_MARKER).stat().st_mtime < cutoff:
                    stale.append(folder)
        results = _stored_results(result_storage, {folder.name for folder in stale})
        size = sum(_size(path) for path in [*stale, *leftovers, *results])
        if not dry_run:
            for path in [*stale, *leftovers, *results]:
                discard(path)
        return Collected(len(stale), len(leftovers), len(results), size)


def _stored_results(storage: Path | None, prefixes: set[str]) -> list[Path]:
    # Prefect names a cached result by its cache key, which for a step is the binding's digest:
    # the step folder's name is that digest's first 32 characters.
    if storage is None or not storage.is_dir() or not prefixes:
        return []
    return [path for path in storage.iterdir() if path.is_file() and path.name[:32] in prefixes]


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class _FinishedElsewhere(Exception):
    """Raised inside :func:`writing` to drop the temporary folder: the step's folder was completed by another run."""

    def __init__(self, artifact: Any) -> None:
        super().__init__("finished by another run")
        self.artifact = artifact


@contextmanager
def writing(folder: Path) -> Iterator[Path]:
    """A temporary folder that replaces ``folder`` once fully written (with its completion marker)."""
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        yield tmp
        (tmp / DONE_MARKER).write_text("complete\n", encoding="utf-8")


def _relocated(value: Any, old: Path, new: Path) -> Any:
    """``value`` with every artifact folder under ``old`` moved to the same place under ``new``."""
    if isinstance(value, Artifact):
        changes = {
            f.name: _relocated(getattr(value, f.name), old, new)
            for f in dataclasses.fields(value)
            if f.name != "folder"
        }
        folder = value.folder
        if folder == old or old in folder.parents:
            folder = new / folder.relative_to(old)
        return dataclasses.replace(value, folder=folder, **changes)
    if isinstance(value, list):
        return [_relocated(item, old, new) for item in value]
    if isinstance(value, tuple):
        return tuple(_relocated(item, old, new) for item in value)
    return value


def step(
    name: str, *, saves: type[Artifact] | None = None, retry_io: bool = False, cache: bool = True
) -> Callable[[F], Any]:
    """Declare a pipeline step: a Prefect task cached on its binding, writing its artifacts in its folder.

    Parameters
    ----------
    name : str
        The task's name (kebab-case), also the artifacts folder's name.
    saves : Artifact subclass, optional
        How the function's return value is saved: ``saves.save(value,
        folder, key)`` writes it into the step's folder and returns the
        artifact the task hands on. The function then takes a :class:`Store`
        argument. Without ``saves`` the value itself is the result.
    retry_io : bool
        Retry an ``OSError`` (three times, after 1, 4 and 10 s); data errors
        are never retried. A step that ``saves`` writes files, so it always
        retries them.
    cache : bool
        False for a step that must run every time (one that decides what
        the others' keys are, such as planning the input).
    """

    def decorate(fn: F) -> Any:
        signature = inspect.signature(fn)
        source = _source_digest(fn)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            # Keyed before the call, as Prefect keys the cache: what the step was given, not what is left of it.
            key = binding_key(name, source, bound.arguments) if saves is not None else ""
            if saves is None:
                return fn(*bound.args, **bound.kwargs)
            store = next(v for v in bound.arguments.values() if isinstance(v, Store))
            folder = store.folder(name, key)
            done_before = is_complete(folder)
            value = fn(*bound.args, **bound.kwargs)
            try:
                with named_write_errors(f"step {name}'s outputs in the work folder {store.root}"), \
                        writing(folder) as tmp:
                    artifact = saves.save(value, tmp, key)
                    if not done_before and is_complete(folder):
                        # Another run finished the same binding meanwhile: the same inputs and code, so files
                        # standing for the same result. Keep them rather than move them aside under its reader.
                        raise _FinishedElsewhere(_relocated(artifact, tmp, folder))
            except _FinishedElsewhere as elsewhere:
                return elsewhere.artifact  # and the temporary folder is gone, as after any exception
            return _relocated(artifact, tmp, folder)

        policy = StepCachePolicy(step_name=name, source=source, saves=saves is not None) if cache else NO_CACHE
        options: dict[str, Any] = {"name": name, "cache_policy": policy}
        if retry_io or saves is not None:
            options.update(retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_on_io_error)
        return task(**options)(run)

    return decorate
