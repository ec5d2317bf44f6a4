"""Cache keys on file content, parameters and code; artifacts in content-addressed folders.

Tasks pass file paths to each other, never DataFrames. A task's cache key
hashes the *content* of every file it receives (so a copy of the same file
under another name, or a ``touch``, still hits), its other parameters, its
own source and the source of the core package (so upgrading the algorithms
invalidates old results). Each task writes its outputs into
``<work_dir>/artifacts/<task>/<digest>/``, a folder named by the same
content digest, so a cached result always points at files that the same
inputs would produce again. If that folder was deleted, the key changes and
the step is recomputed instead of returning a dangling path.
"""

import dataclasses
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from prefect.cache_policies import TASK_SOURCE, CachePolicy
from prefect.context import TaskRunContext
from prefect.utilities.hashing import hash_objects
from pydantic import BaseModel

import somseg
from somseg.io import atomic_path, file_sha256

DONE_MARKER = "_DONE"
WORK_DIR_PARAMETER = "work_dir"


def stage_dir(work_dir: str | Path, stage: str, **inputs: Any) -> Path:
    """The folder where ``stage`` keeps the outputs it made from ``inputs``."""
    return Path(work_dir).resolve() / "artifacts" / stage / content_digest(inputs)[:32]


@contextmanager
def writing(folder: Path) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``folder`` once fully written."""
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        yield tmp
        (tmp / DONE_MARKER).write_text("complete\n", encoding="utf-8")


def is_complete(folder: Path) -> bool:
    return (folder / DONE_MARKER).is_file()


def content_digest(value: Any) -> str:
    """SHA-256 of a value in which every ``Path`` stands for its file's content."""
    canonical = json.dumps(_canonical(value), sort_keys=True, default=repr)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, Path):
        return {"content": _path_digest(value)}
    if isinstance(value, BaseModel):
        return _canonical(value.model_dump(mode="python"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _canonical({field.name: getattr(value, field.name) for field in dataclasses.fields(value)})
    if isinstance(value, dict):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    return value


def _path_digest(path: Path) -> str:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return content_digest({str(p.relative_to(path)): p for p in files})
    if not path.exists():
        return f"missing:{path}"
    stat = path.stat()
    return _file_digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=1024)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    # Size and mtime only key this in-process memo, so a file is hashed once
    # per run however many tasks receive it; the digest itself is content-only.
    return file_sha256(path)


@lru_cache(maxsize=1)
def core_source_digest() -> str:
    """Digest of the core package's source: a new algorithm invalidates old caches."""
    root = Path(somseg.__file__).parent
    digest = hashlib.sha256(somseg.__version__.encode())
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclasses.dataclass
class ContentCachePolicy(CachePolicy):
    """Key = task source + core source + content of file inputs + other inputs.

    A ``work_dir`` input is not part of the key (where artifacts live does not
    change what they are). When a stored result exists but the task's
    artifact folder was deleted, the key is made unique so the step is
    recomputed rather than returning paths to files that are gone.
    """

    def compute_key(
        self,
        task_ctx: TaskRunContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        inputs = dict(inputs or {})
        work_dir = inputs.pop(WORK_DIR_PARAMETER, None)
        source = TASK_SOURCE.compute_key(task_ctx, inputs, flow_parameters, **kwargs)
        key = hash_objects(task_ctx.task.name, source, core_source_digest(), content_digest(inputs), raise_on_failure=True)
        if work_dir is not None and _is_stale(task_ctx, key, stage_dir(work_dir, task_ctx.task.name, **inputs)):
            return f"{key}-rebuild-{uuid.uuid4().hex}"
        return key


def _is_stale(task_ctx: TaskRunContext, key: str, folder: Path) -> bool:
    """A stored result whose artifact folder was deleted would be a dangling path."""
    if is_complete(folder):
        return False
    store = task_ctx.result_store
    return store is not None and store.exists(key)


CONTENT_CACHE = ContentCachePolicy()


def default_work_dir() -> str:
    """Where artifacts live unless a run says otherwise: ``$SOMSEG_WORK_DIR`` or ``.somseg``."""
    return os.environ.get("SOMSEG_WORK_DIR", ".somseg")
