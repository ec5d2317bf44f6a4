"""Writing outputs atomically, and reading back what the pipeline wrote.

Writes go to a temporary name in the destination's folder and are renamed
into place, so a reader never sees a half-written file and a failed run
never destroys the last good output. Input tables are read by
:mod:`somseg.dataset`.
"""

import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from somseg.errors import DataError
from somseg.layout import FAILURE_DIR

if TYPE_CHECKING:
    import pyarrow as pa

ARROW_SUFFIX = ".arrow"
RUN_MARKER = ".somseg-run"


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


def write_parquet(path: str | Path, frame: pd.DataFrame, dictionary_columns: Sequence[str] | None = None) -> Path:
    """Write a DataFrame to Parquet atomically, without its index.

    ``dictionary_columns``, when given, are the only columns Parquet
    dictionary-encodes (by default it tries every column).
    """
    options = {} if dictionary_columns is None else {"use_dictionary": list(dictionary_columns)}
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False, **options)
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


def read_npy(path: str | Path) -> np.ndarray:
    """Read an array written by :func:`write_npy` (pickles refused)."""
    return np.load(path, allow_pickle=False)


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
    anchor = path.parent
    while not anchor.exists():
        anchor = anchor.parent
    if not anchor.is_dir():
        raise DataError(f"output folder {path} cannot be made: {anchor} is a file")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise DataError(f"output folder {path} cannot be written: {anchor} is read-only or not writable by this user")
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
        If another run holds the folder.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    path = target.with_name(f".{target.name}.lock")
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise DataError(
                f"output folder {target} is being written by another run (process {holder}); wait for it to end "
                "or choose another output folder"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
    finally:
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
