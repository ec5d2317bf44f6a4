"""Cache keys follow file content and parameters, not paths or timestamps."""

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from somseg.config import SomConfig
from tasks.caching import content_digest, is_complete, stage_dir, writing


@dataclass(frozen=True)
class _Result:
    matrix: Path
    figure: float


def _file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_copy_under_another_name_has_the_same_digest(tmp_path: Path) -> None:
    original = _file(tmp_path / "a.csv", "x,y\n1,2\n")
    copy = _file(tmp_path / "elsewhere.csv", "x,y\n1,2\n")

    assert content_digest({"source": original}) == content_digest({"source": copy})


def test_touch_keeps_the_digest_and_an_edit_changes_it(tmp_path: Path) -> None:
    path = _file(tmp_path / "a.csv", "x\n1\n")
    before = content_digest({"source": path})
    os.utime(path, (1, 1))
    touched = content_digest({"source": path})
    path.write_text("x\n2\n")

    assert touched == before
    assert content_digest({"source": path}) != before


def test_parameters_and_nested_results_enter_the_digest(tmp_path: Path) -> None:
    matrix = _file(tmp_path / "X.npy", "data")

    base = content_digest({"result": _Result(matrix, 1.0), "som": SomConfig()})

    assert content_digest({"result": _Result(matrix, 1.0), "som": SomConfig(sigma=1.5)}) != base
    assert content_digest({"result": _Result(matrix, 2.0), "som": SomConfig()}) != base
    assert content_digest({"result": _Result(matrix, 1.0), "som": SomConfig()}) == base


def test_stage_folders_are_complete_only_after_a_successful_write(tmp_path: Path) -> None:
    folder = stage_dir(tmp_path, "train-som", sigma=2.0)
    with pytest.raises(RuntimeError):
        with writing(folder) as tmp:
            (tmp / "weights.npy").write_text("half")
            raise RuntimeError("crash mid-write")
    assert not folder.exists() and not is_complete(folder)

    with writing(folder) as tmp:
        (tmp / "weights.npy").write_text("full")

    assert is_complete(folder) and (folder / "weights.npy").read_text() == "full"
    assert stage_dir(tmp_path, "train-som", sigma=2.0) == folder
    assert stage_dir(tmp_path, "train-som", sigma=1.0) != folder
    assert [p.name for p in folder.parent.iterdir()] == [folder.name], "no temporary folders left"
