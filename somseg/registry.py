"""The model registry: every trained version kept, and one of them promoted for scoring.

A registry is a folder::

    versions/<version>/   one model bundle per successful training run, never changed once written
    CURRENT               the promoted version (JSON: version, promoted_at, previous, reason)
    HISTORY.jsonl         every CURRENT there has been, one JSON line each, oldest first
    .lock                 the lock under which versions are added and CURRENT is changed

A version is named by when it was trained and a digest of its files
(:func:`somseg.model.bundle_version`). A version folder appears whole (it is
copied under a hidden name and renamed), and CURRENT is replaced by a rename,
so a reader sees the old pointer or the new one, and a pointer only ever
names a complete bundle. Changes take the registry's lock, so two trainings
that finish together both register their versions and promote one after
the other, each recording the other as ``previous``.

Scoring a registry scores its promoted version. Rolling back promotes the
version CURRENT names as ``previous``. Nothing here deletes a version.
"""

import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, ValidationError

from somseg.config import PromotionConfig
from somseg.errors import DataError, ModelBundleError
from somseg.io import named_write_errors, write_json
from somseg.model import MANIFEST_FILE, PROVENANCE_FILE, SegmentationModel, bundle_digest, bundle_version
from somseg.results import PromotionRecord

VERSIONS_DIR = "versions"
CURRENT_FILE = "CURRENT"
HISTORY_FILE = "HISTORY.jsonl"
LOCK_FILE = ".lock"
# Long enough for another training's promotion step to finish; a holder that dies releases the lock at once.
LOCK_TIMEOUT_SECONDS = 300.0
_TEMPORARY = ".incoming-"


class Pointer(BaseModel):
    """The content of ``CURRENT``: the promoted version, when and why, and the one it replaced."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    promoted_at: str
    previous: str | None = None
    reason: str


@dataclass(frozen=True)
class ResolvedModel:
    """The bundle a scoring run uses: a bundle folder given as is, or a registry's promoted version."""

    bundle: Path
    registry: Path | None = None
    version: str | None = None


@dataclass(frozen=True)
class LabelAgreement:
    """Rows whose segment label two models agree on, out of the rows compared; ``+`` adds partitions."""

    agree: int
    total: int

    def __add__(self, other: "LabelAgreement") -> "LabelAgreement":
        return LabelAgreement(self.agree + other.agree, self.total + other.total)

    @property
    def share(self) -> float:
        """The share of rows that keep their label (1 for no rows: nothing changed)."""
        return self.agree / self.total if self.total else 1.0


@dataclass(frozen=True)
class Comparison:
    """A new model's labels against the promoted version ``version``: the agreement, or why it was not measured."""

    version: str
    agreement: LabelAgreement | None = None
    note: str = ""


def compare_labels(old: npt.ArrayLike, new: npt.ArrayLike) -> LabelAgreement:
    """How many rows two labellings of the same rows, in the same order, give the same segment label.

    Parameters
    ----------
    old, new : array-like of str
        The segment labels of the same rows under the promoted model and the new one.

    Returns
    -------
    LabelAgreement
    """
    a, b = np.asarray(old, dtype=object), np.asarray(new, dtype=object)
    if a.shape != b.shape:
        raise ValueError(f"labels of {a.shape[0]} and {b.shape[0]} rows cannot be compared")
    return LabelAgreement(int(np.sum(a == b)), int(a.shape[0]))


def is_registry(path: str | Path) -> bool:
    """Whether ``path`` is a model registry (it holds ``versions/`` or ``CURRENT``) rather than a bundle."""
    path = Path(path)
    if (path / MANIFEST_FILE).exists():
        return False
    return (path / VERSIONS_DIR).is_dir() or (path / CURRENT_FILE).is_file()


def list_versions(registry: str | Path) -> list[str]:
    """The registered versions, oldest first (names sort by training time)."""
    folder = Path(registry) / VERSIONS_DIR
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_current(registry: str | Path) -> Pointer | None:
    """The promoted version of ``registry``; None when nothing is promoted yet.

    Raises
    ------
    ModelBundleError
        If ``CURRENT`` cannot be read or is not a pointer.
    """
    path = Path(registry) / CURRENT_FILE
    try:
        return Pointer.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as exc:
        raise ModelBundleError(f"model registry {registry}: {CURRENT_FILE} is damaged: {exc}") from exc


def resolve_model(path: str | Path) -> ResolvedModel:
    """The bundle that ``--model PATH`` means: ``PATH`` itself, or the promoted version of the registry at ``PATH``.

    Raises
    ------
    ModelBundleError
        If ``PATH`` is a registry with nothing promoted, or whose promoted
        version folder is missing.
    """
    path = Path(path).resolve()
    if not is_registry(path):
        return ResolvedModel(path)
    current = read_current(path)
    if current is None:
        raise ModelBundleError(
            f"model registry {path} has no promoted version yet; train into it, or promote one of its versions "
            "with 'segment promote'"
        )
    bundle = path / VERSIONS_DIR / current.version
    if not bundle.is_dir():
        raise ModelBundleError(f"model registry {path}: its promoted version {current.version} has no folder {bundle}")
    return ResolvedModel(bundle, path, current.version)


def stale_model(registry: str | Path, not_before: datetime) -> str | None:
    """Why the registry's promoted version is not fresh enough for a run, or None if it is.

    Parameters
    ----------
    registry : str or Path
        A model registry.
    not_before : datetime
        The earliest acceptable training time (timezone-aware).

    Returns
    -------
    str or None
        What is missing, in words (nothing promoted, a version trained
        before ``not_before``, one without a training time), or None.
    """
    current = read_current(registry)
    if current is None:
        return "nothing is promoted yet"
    provenance = Path(registry) / VERSIONS_DIR / current.version / PROVENANCE_FILE
    try:
        trained_at = datetime.fromisoformat(json.loads(provenance.read_text(encoding="utf-8"))["trained_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"the promoted version {current.version} does not record when it was trained"
    if trained_at.tzinfo is None:  # written in UTC, as every time of a run is
        trained_at = trained_at.replace(tzinfo=UTC)
    if trained_at < not_before:
        return (f"the promoted version {current.version} was trained at {trained_at.isoformat()}, before "
                f"{not_before.isoformat(timespec='seconds')}")
    return None


@contextmanager
def registry_lock(registry: str | Path, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold the registry's lock: one process at a time adds a version or changes ``CURRENT``.

    Unlike a run folder's lock, this one is waited for (up to ``timeout``
    seconds): a promotion is short, and two trainings finishing together
    should both get their turn. The lock file stays in place, so that every
    process locks the same file.

    Raises
    ------
    DataError
        If the lock is still held after ``timeout`` seconds, or cannot be
        written (a full or read-only file system).
    """
    path = Path(registry) / LOCK_FILE
    with named_write_errors(f"the lock file {path} of model registry {registry}"):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the block
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DataError(
                        f"model registry {registry} is locked by another process (lock file {path}); try again "
                        "when it has finished"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        handle.close()


def register(registry: str | Path, bundle: str | Path) -> str:
    """Add the bundle at ``bundle`` to the registry as a new version; its name. Call under :func:`registry_lock`.

    The bundle is verified, copied under a hidden name and renamed into
    ``versions/``: a version folder is always complete. Registering the same
    bundle again (a retried step) finds it there and returns its name.

    Raises
    ------
    ModelBundleError
        If the bundle is damaged or has no provenance (only bundles of
        training runs of this release are versioned).
    DataError
        If a different bundle already holds the version's name.
    """
    registry, bundle = Path(registry), Path(bundle)
    SegmentationModel.load(bundle)  # checksums, format version: only a sound bundle becomes a version
    version = bundle_version(bundle)
    if version is None:
        raise ModelBundleError(f"model bundle {bundle} records no provenance; only bundles that a training run "
                               "of this release wrote can be registered")
    versions = registry / VERSIONS_DIR
    target = versions / version
    with named_write_errors(f"the model registry {registry}"):
        versions.mkdir(parents=True, exist_ok=True)
        for leftover in versions.glob(f"{_TEMPORARY}*"):  # a copy a killed process left; only ever ours
            shutil.rmtree(leftover, ignore_errors=True)
        if target.exists():
            if bundle_digest(target) == bundle_digest(bundle):
                return version
            raise DataError(f"model registry {registry} already has a different version named {version}")
        incoming = versions / f"{_TEMPORARY}{uuid.uuid4().hex[:12]}"
        try:
            shutil.copytree(bundle, incoming)
            if bundle_digest(incoming) != bundle_digest(bundle):
                raise ModelBundleError(f"model bundle {bundle} changed while it was copied into {registry}")
            os.rename(incoming, target)
        finally:
            shutil.rmtree(incoming, ignore_errors=True)
    return version


def point(registry: str | Path, version: str, reason: str, promoted_at: str) -> Pointer:
    """Make ``version`` the promoted one: replace ``CURRENT`` and add it to the history. Call under :func:`registry_lock`."""
    registry = Path(registry)
    current = read_current(registry)
    pointer = Pointer(version=version, promoted_at=promoted_at, previous=None if current is None else current.version,
                      reason=reason)
    with named_write_errors(f"the model registry {registry}"):
        write_json(registry / CURRENT_FILE, pointer.model_dump(mode="json"))
        # The history is a record for people, written after the pointer: a pointer never waits on it.
        with open(registry / HISTORY_FILE, "a", encoding="utf-8") as history:
            history.write(json.dumps(pointer.model_dump(mode="json")) + "\n")
    return pointer


def promote(registry: str | Path, version: str, reason: str, promoted_at: str) -> Pointer:
    """Promote a registered version by hand (or again): it becomes the one scoring the registry uses.

    Raises
    ------
    ModelBundleError
        If ``registry`` is not a registry, ``version`` is not one of its
        versions, or its bundle is damaged.
    """
    registry = _existing(registry)
    with registry_lock(registry):
        _verify_version(registry, version)
        return point(registry, version, reason, promoted_at)


def rollback(registry: str | Path, promoted_at: str) -> Pointer:
    """Promote again the version that the current one replaced (``CURRENT``'s ``previous``).

    A second rollback undoes the first: it goes back to the version rolled
    back from. To go further back, promote a version by name.

    Raises
    ------
    ModelBundleError
        If ``registry`` is not a registry, nothing is promoted, the current
        version replaced none, or that version's bundle is missing or damaged.
    """
    registry = _existing(registry)
    with registry_lock(registry):
        current = read_current(registry)
        if current is None:
            raise ModelBundleError(f"model registry {registry} has no promoted version to roll back from")
        if current.previous is None:
            raise ModelBundleError(
                f"model registry {registry}: the promoted version {current.version} replaced none; there is nothing "
                "to roll back to"
            )
        _verify_version(registry, current.previous)
        return point(registry, current.previous, f"rollback from {current.version}", promoted_at)


def decide(
    promotion: PromotionConfig, gates_passed: bool, current: str | None, comparison: Comparison | None
) -> tuple[bool, str]:
    """Whether a new version is promoted, and why, in words.

    Parameters
    ----------
    promotion : PromotionConfig
        ``auto`` and ``min_label_agreement``.
    gates_passed : bool
        The run's verdict (a run whose gates failed never gets here; the check stands anyway).
    current : str or None
        The promoted version now, under the registry's lock.
    comparison : Comparison or None
        The new labels against the version promoted when they were compared;
        None when they were not compared.
    """
    if not gates_passed:
        return False, "the run's gates did not pass"
    if not promotion.auto:
        return False, "promotion.auto is false: registered only; promote it with 'segment promote'"
    minimum = promotion.min_label_agreement
    if minimum is None:
        return True, "the gates passed"
    if current is None:
        return True, "the gates passed; no version was promoted yet, so no labels were compared"
    if comparison is None or comparison.version != current:
        compared = "none" if comparison is None else comparison.version
        return False, (f"the promoted version is now {current}, but this run compared its labels with {compared}; "
                       "promote it by hand if it should replace the current one")
    if comparison.agreement is None:
        return False, f"the labels could not be compared with {current}: {comparison.note}; promote it by hand"
    share = comparison.agreement.share
    if share < minimum:
        return False, (f"{share:.1%} of the training rows keep their segment label under the new version, below "
                       f"promotion.min_label_agreement {minimum:g}; {current} stays promoted")
    return True, (f"the gates passed and {share:.1%} of the training rows keep their segment label "
                  f"(promotion.min_label_agreement {minimum:g})")


def register_and_promote(
    registry: str | Path,
    bundle: str | Path,
    promotion: PromotionConfig,
    gates_passed: bool,
    comparison: Comparison | None,
    promoted_at: str,
) -> PromotionRecord:
    """A training run's model into the registry: registered as a version, then promoted if :func:`decide` says so.

    One lock covers both, and the decision reads ``CURRENT`` under it, so
    concurrent trainings promote one after the other.

    Returns
    -------
    PromotionRecord
        The version, whether it was promoted and why, and what is promoted now.
    """
    registry = check_registry_folder(registry)
    with registry_lock(registry):
        version = register(registry, bundle)
        before = read_current(registry)
        previous = None if before is None else before.version
        promoted, reason = decide(promotion, gates_passed, previous, comparison)
        if promoted and previous != version:
            point(registry, version, reason, promoted_at)
        agreement = None if comparison is None or comparison.agreement is None else comparison.agreement.share
        return PromotionRecord(
            registry=str(registry), version=version, promoted=promoted, reason=reason,
            current=version if promoted else previous, previous=previous, label_agreement=agreement,
            compared_with=None if comparison is None else comparison.version,
            min_label_agreement=promotion.min_label_agreement,
        )


def check_registry_folder(path: str | Path) -> Path:
    """Check that a training run may register versions in ``path``, and return it resolved.

    It must be a registry, or a folder to make (new or empty): a model
    bundle or a folder of other files is refused rather than written into.

    Raises
    ------
    DataError
        If ``path`` is a file, a model bundle or a non-empty folder that is no registry.
    """
    path = Path(path).resolve()
    if path.exists() and not path.is_dir():
        raise DataError(f"model registry {path} is a file; give a folder")
    if (path / MANIFEST_FILE).exists():
        raise DataError(f"model registry {path} is a model bundle; give the registry's own folder (new or empty "
                        "the first time)")
    # Listed before asking whether it is a registry: a training making the registry meanwhile adds versions/
    # first, so what is listed then is either the registry's or another's files.
    entries = [p for p in path.iterdir() if p.name != LOCK_FILE] if path.is_dir() else []
    if entries and not is_registry(path):
        raise DataError(f"model registry {path} holds files but is no model registry (it has no {VERSIONS_DIR}/); "
                        "give a new or empty folder, or an existing registry")
    return path


def describe(registry: str | Path) -> str:
    """The registry's versions, oldest first, one line each (the promoted one starred), then CURRENT's record.

    Raises
    ------
    ModelBundleError
        If ``registry`` is not a registry, or ``CURRENT`` is damaged.
    """
    from somseg.model import read_provenance

    registry = _existing(registry)
    current = read_current(registry)
    lines = [f"model registry {registry}"]
    for version in list_versions(registry):
        try:
            provenance = read_provenance(registry / VERSIONS_DIR / version)
            origin = "no provenance" if provenance is None else (
                f"input {provenance.input}, run {provenance.training_run_id or '-'}")
        except ModelBundleError as damaged:
            origin = f"damaged: {damaged}"
        star = "*" if current is not None and current.version == version else " "
        lines.append(f"{star} {version}  {origin}")
    if current is None:
        lines.append("nothing promoted yet")
    else:
        lines.append(f"promoted: {current.version} at {current.promoted_at} (previous: {current.previous or 'none'}; "
                     f"{current.reason})")
    return "\n".join(lines)


def _existing(registry: str | Path) -> Path:
    path = Path(registry).resolve()
    if not path.is_dir():
        raise ModelBundleError(f"model registry {path} does not exist")
    if not is_registry(path):
        raise ModelBundleError(f"{path} is not a model registry (it has no {VERSIONS_DIR}/ folder)")
    return path


def _verify_version(registry: Path, version: str) -> None:
    folder = registry / VERSIONS_DIR / version
    if version.startswith(".") or "/" in version or not folder.is_dir():
        known = list_versions(registry)
        shown = ", ".join(known[-5:]) if known else "none"
        raise ModelBundleError(f"model registry {registry} has no version {version!r} (latest: {shown})")
    SegmentationModel.load(folder)  # a damaged version is not promoted
