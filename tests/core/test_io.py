"""somseg.io: atomic writes, run folders."""

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from somseg.errors import DataError
from somseg.io import (
    RUN_MARKER,
    atomic_path,
    new_staging_folder,
    prepare_run_folder,
    publish_run_folder,
    read_npy,
    write_json,
    write_npy,
    write_parquet,
)


def test_atomic_path_exception_keeps_original(tmp_path) -> None:
    target = tmp_path / "out.json"
    target.write_text("original", encoding="utf-8")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("half written", encoding="utf-8")
            raise RuntimeError("boom")
    assert target.read_text(encoding="utf-8") == "original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_path_exception_with_folder_keeps_original(tmp_path) -> None:
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "old.txt").write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "new.txt").write_text("new", encoding="utf-8")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]


def test_atomic_path_success_replaces(tmp_path) -> None:
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("new", encoding="utf-8")
        assert not target.exists()
    assert target.read_text(encoding="utf-8") == "new"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_write_json_round_trip(tmp_path) -> None:
    payload = {"b": np.int64(3), "a": np.arange(3), "x": 0.1, "p": tmp_path / "f", "s": "é"}
    path = write_json(tmp_path / "o.json", payload)
    loaded = json.loads(path.read_text(encoding="utf-8"))
    assert loaded == {"b": 3, "a": [0, 1, 2], "x": 0.1, "p": str(tmp_path / "f"), "s": "é"}
    assert list(loaded) == ["b", "a", "x", "p", "s"]


def test_write_json_refuses_unknown_types_and_leaves_nothing(tmp_path) -> None:
    with pytest.raises(TypeError, match="cannot write object as JSON"):
        write_json(tmp_path / "o.json", {"x": object()})
    assert list(tmp_path.iterdir()) == []


def test_write_parquet_round_trip(tmp_path) -> None:
    frame = pd.DataFrame({"ID": ["007", "8"], "v": [1.5, np.nan]}, index=[5, 9])
    path = write_parquet(tmp_path / "o.parquet", frame)
    loaded = pd.read_parquet(path)
    assert list(loaded.index) == [0, 1]
    assert loaded["ID"].tolist() == ["007", "8"]
    np.testing.assert_array_equal(loaded["v"].to_numpy(), [1.5, np.nan])


@pytest.mark.parametrize(
    "array",
    [np.arange(12, dtype=np.float64).reshape(2, 3, 2), np.array([3, 1, 2], dtype=np.int64), np.asfortranarray(np.eye(3))],
    ids=["3d-float", "int", "fortran"],
)
def test_write_npy_round_trip(tmp_path, array) -> None:
    loaded = read_npy(write_npy(tmp_path / "a.npy", array))
    assert loaded.dtype == array.dtype
    np.testing.assert_array_equal(loaded, array)


def test_read_npy_refuses_pickles(tmp_path) -> None:
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle"):
        read_npy(path)


def test_write_npy_refuses_object_arrays(tmp_path) -> None:
    with pytest.raises(ValueError):
        write_npy(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    assert list(tmp_path.iterdir()) == []


def test_prepare_run_folder_refuses_foreign_folder(tmp_path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "precious.txt").write_text("keep", encoding="utf-8")
    with pytest.raises(DataError, match="not empty and was not written by a segmentation run"):
        prepare_run_folder(folder)


def test_prepare_run_folder_refuses_file(tmp_path) -> None:
    path = tmp_path / "out"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match="is a file"):
        prepare_run_folder(path)


@pytest.mark.parametrize("state", ["absent", "empty", "marked"])
def test_prepare_run_folder_accepts(tmp_path, state) -> None:
    folder = tmp_path / "out"
    if state != "absent":
        folder.mkdir()
    if state == "marked":
        (folder / RUN_MARKER).write_text("", encoding="utf-8")
        (folder / "segments.parquet").write_text("old", encoding="utf-8")
    assert prepare_run_folder(folder) == folder.resolve()


def test_publish_run_folder_replaces_old_run(tmp_path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / RUN_MARKER).write_text("", encoding="utf-8")
    (target / "stale.txt").write_text("old", encoding="utf-8")
    staging = new_staging_folder(target)
    (staging / "segments.parquet").write_text("new", encoding="utf-8")
    assert publish_run_folder(staging, target) == target
    assert sorted(p.name for p in target.iterdir()) == [RUN_MARKER, "segments.parquet"]
    assert (target / "segments.parquet").read_text(encoding="utf-8") == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # A published folder is accepted as the destination of the next run.
    assert prepare_run_folder(target) == target.resolve()


def test_publish_run_folder_to_new_location(tmp_path) -> None:
    target = tmp_path / "deep" / "out"
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "a.txt").write_text("a", encoding="utf-8")
    publish_run_folder(staging, target)
    assert sorted(p.name for p in target.iterdir()) == [RUN_MARKER, "a.txt"]
    assert not staging.exists()


def test_a_run_folder_never_holds_or_sits_inside_what_the_run_reads(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    table = run / "customers.csv"
    table.write_text("ID,Age\n1,30\n", encoding="utf-8")
    cases = [
        (run, [("the model", run / "model")], "contains the model"),
        (run / "model" / "x", [("the model", run / "model")], "is inside the model"),
        (run, [("the input file", table)], "contains the input file"),
        (tmp_path / "work", [("the work folder", tmp_path / "work")], "is the work folder"),
    ]
    for out, protected, relation in cases:
        with pytest.raises(DataError, match=f"{relation} .*a run replaces its whole output folder"):
            prepare_run_folder(out, protected)
    assert prepare_run_folder(tmp_path / "elsewhere", [("the model", run / "model")]) == (tmp_path / "elsewhere").resolve()


def test_files_a_user_added_to_a_run_folder_stop_the_next_run(tmp_path: Path) -> None:
    staging, run = tmp_path / ".staging", tmp_path / "run"
    (staging / "model").mkdir(parents=True)
    (staging / "metrics.json").write_text("{}", encoding="utf-8")
    (staging / "model" / "model.json").write_text("{}", encoding="utf-8")
    publish_run_folder(staging, run)
    (run / "last_failure").mkdir()
    (run / "last_failure" / "error.txt").write_text("a run's own", encoding="utf-8")
    assert prepare_run_folder(run) == run.resolve()  # everything in it a run wrote

    (run / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(DataError, match=r"holds 1 file\(s\) no run wrote \(notes.txt\); .*move them elsewhere"):
        prepare_run_folder(run)
    assert (run / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_one_run_at_a_time_holds_an_output_folder(tmp_path: Path) -> None:
    from somseg.io import run_folder_lock

    target = tmp_path / "runs" / "weekly"
    with run_folder_lock(target):
        with pytest.raises(DataError, match=r"being written by another run \(process \d+\)"), run_folder_lock(target):
            pass
    with run_folder_lock(target):  # released, and its file gone
        pass
    assert not list((tmp_path / "runs").iterdir())


def test_a_lock_taken_on_a_file_its_holder_just_removed_is_taken_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    import somseg.io
    from somseg.io import run_folder_lock

    opened: list[str] = []

    def open_as_the_holder_lets_go(path: str, *args: object, **kwargs: object) -> object:
        handle = builtins.open(path, *args, **kwargs)
        opened.append(str(path))
        if len(opened) == 1:
            os.unlink(path)  # the run before us ended between our open and our lock
        return handle

    monkeypatch.setattr(somseg.io, "open", open_as_the_holder_lets_go, raising=False)
    target = tmp_path / "run"
    with run_folder_lock(target):
        assert len(opened) == 2, "the lock on the removed file was not taken again"
        assert (tmp_path / ".run.lock").read_text(encoding="utf-8").strip() == str(os.getpid())


def test_what_a_killed_run_left_is_cleared_and_a_half_done_swap_undone(tmp_path: Path) -> None:
    from somseg.io import recover_run_folder

    target = tmp_path / "run"
    staging = tmp_path / ".run.staging-abc"
    staging.mkdir()
    (staging / "segments.parquet").write_bytes(b"half")
    # Killed between the two renames of a swap: the folder is gone, the previous run is in its backup.
    backup = tmp_path / ".run.previous-def"
    backup.mkdir()
    (backup / RUN_MARKER).write_text("{}", encoding="utf-8")
    (backup / "metrics.json").write_text("{}", encoding="utf-8")
    mine = tmp_path / ".run.previous-notes"  # not a run's: left alone
    mine.mkdir()

    done = recover_run_folder(target)

    assert (target / "metrics.json").is_file() and not staging.exists() and not backup.exists() and mine.exists()
    assert any("removed .run.staging-abc" in line for line in done) and any("restored run" in line for line in done)
    assert recover_run_folder(target) == []


def test_an_output_folder_under_a_file_is_refused_before_any_work(tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match=r"cannot be made: .*notes.txt is a file"):
        prepare_run_folder(a_file / "run")


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A read-only file system (a small tmpfs mounted read-only): needs root, skipped otherwise."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                                            capture_output=True).returncode != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_an_output_folder_on_a_read_only_file_system_is_refused_before_any_work(read_only_folder: Path) -> None:
    with pytest.raises(DataError, match=r"cannot be written: .*ro is on a read-only file system"):
        prepare_run_folder(read_only_folder / "run")
