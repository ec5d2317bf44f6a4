"""Writing outputs atomically, and reading back what the pipeline wrote.

Writes go to a temporary name in the destination's folder and are renamed
into place, so a reader never sees a half-written file and a failed run
never destroys the last good output. Input tables are read by
:mod:`somseg.dataset`.
"""

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd

from somseg.errors import DataError
from somseg.layout import FAILURE_DIR

if TYPE_CHECKING:
    import pyarrow as pa

ARROW_SUFFIX = ".arrow"
RUN_MARKER = ".somseg-run"
# Errors a retry seconds later cannot fix: the file system is read-only or full, a path
# is a file where a folder is needed (or the reverse), or access is denied.
PERMANENT_ERRNOS = frozenset(
    {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM}
)
T = TypeVar("T")


def os_errno(error: OSError) -> int | None:
    """The errno of ``error``, also when the library that raised it gives it only in its message (Arrow)."""
    if error.errno is not None:
        return error.errno
    found = re.search(r"\[errno (\d+)\]", str(error), re.IGNORECASE)
    return int(found.group(1)) if found else None


@contextmanager
def named_write_errors(what: str) -> Iterator[None]:
    """Raise an ``OSError`` no retry can fix (:data:`PERMANENT_ERRNOS`) as a DataError that names ``what``.

    Parameters
    ----------
    what : str
        What was being written, with its path (``"the work folder /x/.somseg"``);
        a full disk or a read-only file system is then reported with the
        folder to free or fix, rather than as an error without a path.
    """
    try:
        yield
    except OSError as error:
        code = os_errno(error)
        if code not in PERMANENT_ERRNOS:
            raise
        detail = f" ({error.filename})" if error.filename else ""
        raise DataError(f"cannot write {what}: {os.strerror(code)}{detail}") from error


def file_sha256(path: str | Path, block_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(block_size):
            digest.update(block)
    return digest.hexdigest()


def _temporary_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:12]}")


def _backup_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.previous-{uuid.uuid4().hex[:12]}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success.

    On an exception the temporary file or folder is removed and ``path`` is
    left exactly as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(path)
    try:
        yield tmp
        if tmp.is_dir():
            _replace_dir(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        _remove(tmp)


def _replace_dir(source: Path, target: Path) -> None:
    # A directory cannot replace a non-empty one in a single rename, so the old
    # one is moved aside first and restored if the second rename fails (and by
    # recover_run_folder, if the process is killed between the two renames).
    backup = _backup_sibling(target) if target.exists() else None
    if backup is not None:
        os.replace(target, backup)
    try:
        os.replace(source, target)
    except OSError:
        if backup is not None:
            os.replace(backup, target)
        raise
    if backup is not None:
        _remove(backup)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def write_json(path: str | Path, payload: Any) -> Path:
    """Write JSON atomically (UTF-8, indented, keys in insertion order)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n", encoding="utf-8")
    return Path(path)


def write_parquet(
    path: str | Path,
    frame: pd.DataFrame,
    dictionary_columns: Sequence[str] | None = None,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write a DataFrame to Parquet atomically, without its index.

    ``dictionary_columns``, when given, are the only columns Parquet
    dictionary-encodes (by default it tries every column). ``metadata``
    is added to the file's key-value metadata (beside pandas' own).
    """
    options = {} if dictionary_columns is None else {"use_dictionary": list(dictionary_columns)}
    import pyarrow as pa
    import pyarrow.parquet as pq

    # What DataFrame.to_parquet does, with room for our own key-value metadata beside pandas'.
    table = pa.Table.from_pandas(frame, preserve_index=False)
    extra = {key.encode(): value.encode() for key, value in (metadata or {}).items()}
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **extra}), tmp, **options)
    return Path(path)


def write_arrow_table(path: str | Path, table: "pa.Table") -> Path:
    """Write an Arrow table as one uncompressed record batch of an IPC file, atomically."""
    import pyarrow as pa

    with atomic_path(path) as tmp:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
    return Path(path)


@contextmanager
def mapped_arrow_table(path: str | Path, columns: Sequence[str] | None = None) -> Iterator["pa.Table"]:
    """An Arrow IPC file as a memory-mapped table, valid inside the block.

    Columns go from the page cache straight to whatever is made of them
    (a frame, a chunk), with no intermediate copy of the whole file.
    """
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
        yield table if columns is None else table.select(list(columns))


def write_npy(path: str | Path, array: np.ndarray) -> Path:
    """Write a NumPy array atomically in ``.npy`` format (no pickle)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
    return Path(path)


def read_npy(path: str | Path, mmap: bool = False) -> np.ndarray:
    """Read an array written by :func:`write_npy` (pickles refused), memory-mapped read-only if ``mmap``."""
    return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)


def read_written(path: str | Path, reader: Callable[[Path], T]) -> T:
    """``reader(path)`` for a file the pipeline wrote, or a DataError naming the file.

    Parameters
    ----------
    path : str or Path
        A file (or folder of part files) of a run folder or model bundle.
    reader : callable
        Reads ``path``; any OSError, ValueError (JSON, YAML, text encoding)
        or Arrow error it raises means the file is damaged or was not written
        by this pipeline.

    Raises
    ------
    DataError
        Naming ``path`` and what is wrong with it.
    """
    import yaml
    from pyarrow import ArrowException

    try:
        return reader(Path(path))
    except (OSError, ValueError, ArrowException, yaml.YAMLError) as exc:
        raise DataError(f"{path} cannot be read as a run writes it: {type(exc).__name__}: {exc}") from exc


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def prepare_run_folder(path: str | Path, protected: Sequence[tuple[str, str | Path]] = ()) -> Path:
    """Check that ``path`` may hold a run's outputs and return it resolved.

    A run replaces the whole folder when it succeeds, so the folder must be
    new, empty, or a folder an earlier run wrote (it carries a marker file
    listing what the run wrote) holding nothing else; and it must neither
    be, hold, nor lie inside anything the run reads or keeps (``protected``:
    the input, the model, the work folder).

    Parameters
    ----------
    path : str or Path
        The output folder.
    protected : sequence of (str, path)
        What the run must not replace, each with how messages name it (``"the input file"``).

    Raises
    ------
    DataError
        If ``path`` is a file, a non-empty folder no run wrote, a run folder
        holding files its run did not write, or overlaps a protected path.
    """
    path = Path(path).resolve()
    for what, other in protected:
        _refuse_overlap(path, Path(other).resolve(), what)
    if path.exists() and not path.is_dir():
        raise DataError(f"output location {path} is a file; give a folder")
    # The run assembles its outputs beside the folder: where that is must be a writable folder.
    require_writable_folder(path.parent, f"output folder {path}")
    if path.is_dir() and any(path.iterdir()) and not (path / RUN_MARKER).exists():
        raise DataError(
            f"output folder {path} is not empty and was not written by a segmentation run; "
            "choose a new or empty folder (a successful run replaces the folder's contents)"
        )
    foreign = foreign_files(path)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise DataError(
            f"output folder {path} holds {len(foreign)} file(s) no run wrote ({shown}); a run replaces the whole "
            "folder, so move them elsewhere or choose another output folder"
        )
    return path


def require_writable_folder(path: str | Path, what: str) -> None:
    """Check that ``path`` is, or can be made as, a folder this process can write in.

    Parameters
    ----------
    path : str or Path
        A folder, existing or not.
    what : str
        How messages name the folder (``"work folder /x"``).

    Raises
    ------
    DataError
        If ``path`` or the nearest existing folder above it is a file, or is
        read-only (a read-only file system, or no permission).
    """
    anchor = Path(path).resolve()
    while not anchor.exists():
        anchor = anchor.parent
    if not anchor.is_dir():
        raise DataError(f"{what} cannot be made: {anchor} is a file")
    try:
        read_only = bool(os.statvfs(anchor).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        raise DataError(f"{what} cannot be written: {anchor} is on a read-only file system")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise DataError(f"{what} cannot be written: this user may not write in {anchor}")


def _refuse_overlap(out: Path, other: Path, what: str) -> None:
    if out == other:
        relation = "is"
    elif out in other.parents:
        relation = "contains"
    elif other in out.parents:
        relation = "is inside"
    else:
        return
    raise DataError(
        f"output folder {out} {relation} {what} {other}: a run replaces its whole output folder, which would "
        "delete or change it; choose another output folder"
    )


def foreign_files(folder: Path) -> list[str]:
    """The files in a run folder that its run did not write (a user's notes, say), as relative paths.

    Files of ``last_failure/`` are a run's too. A marker from before runs
    listed their files vouches for every file.
    """
    marker = folder / RUN_MARKER
    if not marker.is_file():
        return []
    try:
        written = set(json.loads(marker.read_text(encoding="utf-8"))["files"])
    except (ValueError, KeyError, TypeError):
        return []
    return [name for name in _files_below(folder) if name not in written and not name.startswith(f"{FAILURE_DIR}/")]


def _files_below(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(
        path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file() and path.name != RUN_MARKER
    )


def mark_run_folder(folder: Path, files: list[str] | None = None) -> None:
    """Write the marker that says a run wrote ``folder``, listing its files (all of them when ``files`` is None)."""
    listed = _files_below(folder) if files is None else files
    (folder / RUN_MARKER).write_text(json.dumps({"written_by": "somseg", "files": listed}) + "\n", encoding="utf-8")


def publish_run_folder(staging: Path, target: Path) -> Path:
    """Replace ``target`` by the fully written ``staging`` folder."""
    mark_run_folder(staging)
    target.parent.mkdir(parents=True, exist_ok=True)
    _replace_dir(staging, target)
    return target


@contextmanager
def run_folder_lock(target: Path) -> Iterator[None]:
    """Hold the output folder ``target`` for one run: a second run on it at once is refused.

    The lock is an advisory ``flock`` on a hidden file beside the folder,
    released (and the file removed) when the block ends, and by the kernel
    if the process dies.

    Raises
    ------
    DataError
        If another run holds the folder, or the lock file cannot be written
        (a full or read-only file system).
    """
    path = target.with_name(f".{target.name}.lock")
    with named_write_errors(f"the lock file {path} of output folder {target}"):
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = _open_locked(path, target)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
        except BaseException:
            path.unlink(missing_ok=True)
            handle.close()
            raise
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        handle.close()


def _open_locked(path: Path, target: Path) -> Any:
    """The lock file at ``path``, open and locked; a DataError naming the holder if another process has it."""
    while True:
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - the caller holds it for the run
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise DataError(
                f"output folder {target} is being written by another run (process {holder}); wait for it to end "
                "or choose another output folder"
            ) from None
        # The holder before us removes the file as it lets go: a lock on that unlinked file
        # would exclude no one, so lock again the file now at the path.
        try:
            current: os.stat_result | None = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and current.st_ino == os.fstat(handle.fileno()).st_ino:
            return handle
        handle.close()


def recover_run_folder(target: Path) -> list[str]:
    """Clear what a killed run left beside ``target``, under the folder's lock; what was done, in words.

    A run that was killed while writing leaves its staging folder; one killed
    between the two renames of the swap leaves ``target`` missing and the
    previous run in a hidden backup, which is put back. Only folders a run
    wrote (they carry the marker) are touched.
    """
    done = []
    for staging in sorted(target.parent.glob(f".{target.name}.staging-*")):
        _remove(staging)
        done.append(f"removed {staging.name}, left by a run that did not finish")
    backups = sorted(
        (path for path in target.parent.glob(f".{target.name}.previous-*") if (path / RUN_MARKER).exists()),
        key=lambda path: path.stat().st_mtime,
    )
    if backups and not target.exists():
        os.replace(backups.pop(), target)
        done.append(f"restored {target.name} from the backup a run killed while replacing it left")
    for backup in backups:
        _remove(backup)
        done.append(f"removed {backup.name}, an earlier run's backup left by a run killed while replacing it")
    return done


def new_staging_folder(target: Path) -> Path:
    """A fresh folder beside ``target`` to assemble a run's outputs in."""
    staging = target.parent / f".{target.name}.staging-{uuid.uuid4().hex[:12]}"
    staging.mkdir(parents=True)
    return staging


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """A fresh folder beside ``target`` to fill; it replaces ``target`` if the block succeeds.

    Whatever happens, nothing half-written is left behind: on an error the
    staging folder is removed and ``target`` is untouched.
    """
    staging = new_staging_folder(target)
    try:
        yield staging
        publish_run_folder(staging, target)
    finally:
        discard(staging)


def discard(path: Path) -> None:
    """Remove a staging file or folder, ignoring one that is already gone."""
    _remove(path)
