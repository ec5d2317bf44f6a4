"""somseg.io: reading tables, range checks, atomic writes, run folders."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from somseg.errors import DataError
from somseg.io import (
    RUN_MARKER,
    atomic_path,
    check_ranges,
    copy_table,
    new_staging_folder,
    prepare_run_folder,
    publish_run_folder,
    read_frame,
    read_npy,
    read_table,
    write_json,
    write_npy,
    write_parquet,
)

FEATURES = ["Age", "Family_Size"]


def _write_csv(path, sep: str, bom: bool = False) -> None:
    rows = [
        ["ID", "Extra", "Family_Size", "Age"],
        ["1", "x", "3", "30"],
        ["2", "y", "", "41.5"],
        ["3", "z", "1", ""],
    ]
    text = "\n".join(sep.join(row) for row in rows) + "\n"
    path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8")


@pytest.mark.parametrize(
    "name, sep, bom",
    [
        ("comma.csv", ",", False),
        ("semicolon.csv", ";", False),
        ("tab.tsv", "\t", False),
        ("tab.txt", "\t", False),
        ("bom.csv", ",", True),
        ("bom_semicolon.csv", ";", True),
    ],
)
def test_read_csv_delimiters_and_bom(tmp_path, name, sep, bom) -> None:
    path = tmp_path / name
    _write_csv(path, sep, bom)
    frame = read_table(path, "ID", FEATURES)
    assert list(frame.columns) == ["ID", "Age", "Family_Size"]
    assert frame["ID"].dtype == np.int64
    assert frame["ID"].tolist() == [1, 2, 3]
    assert frame["Age"].dtype == np.float64 and frame["Family_Size"].dtype == np.float64
    np.testing.assert_array_equal(frame["Age"].to_numpy(), [30.0, 41.5, np.nan])
    np.testing.assert_array_equal(frame["Family_Size"].to_numpy(), [3.0, np.nan, 1.0])


def test_read_parquet_selects_columns_in_order(tmp_path) -> None:
    path = tmp_path / "t.parquet"
    pd.DataFrame(
        {"Family_Size": [3, 2], "Other": ["a", "b"], "ID": [10, 20], "Age": [30.0, None]}
    ).to_parquet(path, index=False)
    frame = read_table(path, "ID", FEATURES)
    assert list(frame.columns) == ["ID", "Age", "Family_Size"]
    assert frame["ID"].dtype == np.int64 and frame["ID"].tolist() == [10, 20]
    assert frame["Family_Size"].dtype == np.float64
    np.testing.assert_array_equal(frame["Age"].to_numpy(), [30.0, np.nan])


def test_ids_with_leading_zeros_stay_strings(tmp_path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("ID,Age,Family_Size\n007,30,1\n123,40,2\n", encoding="utf-8")
    frame = read_table(path, "ID", FEATURES)
    assert frame["ID"].tolist() == ["007", "123"]
    assert not pd.api.types.is_integer_dtype(frame["ID"])


def test_ids_with_leading_zeros_survive_padded_header(tmp_path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("ID ,Age,Family_Size\n007,30,1\n010,40,2\n", encoding="utf-8")
    frame = read_table(path, "ID", FEATURES)
    assert list(frame.columns) == ["ID", "Age", "Family_Size"]  # header stripping itself works
    assert frame["ID"].tolist() == ["007", "010"]


def test_missing_column_names_file_and_column(tmp_path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("ID,Age\n1,30\n", encoding="utf-8")
    with pytest.raises(DataError, match="lacks column") as info:
        read_table(path, "ID", FEATURES)
    message = str(info.value)
    assert str(path) in message and "Family_Size" in message
    assert "Age" not in message.split("lacks column(s)")[1].split(";")[0]


def test_missing_parquet_column_names_file_and_column(tmp_path) -> None:
    path = tmp_path / "t.parquet"
    pd.DataFrame({"ID": [1], "Age": [30.0]}).to_parquet(path, index=False)
    with pytest.raises(DataError, match=r"lacks column\(s\) Family_Size") as info:
        read_table(path, "ID", FEATURES)
    assert str(path) in str(info.value)


def test_non_numeric_feature_values(tmp_path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("ID,Age,Family_Size\n1,30,1\n2,abc,2\n3,,3\n4,x y,4\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_table(path, "ID", FEATURES)
    message = str(info.value)
    assert str(path) in message
    assert "'Age'" in message
    assert "2 row(s) are not numbers" in message
    assert "first at data row 2" in message
    assert "'abc'" in message and "'x y'" in message


@pytest.mark.parametrize("name", ["t.xlsx", "t.json"])
def test_unsupported_extension(tmp_path, name) -> None:
    path = tmp_path / name
    path.write_text("ID,Age\n1,2\n", encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"unsupported extension '{path.suffix}'")):
        read_table(path, "ID", FEATURES)


def test_missing_file(tmp_path) -> None:
    path = tmp_path / "absent.csv"
    with pytest.raises(DataError, match="does not exist") as info:
        read_table(path, "ID", FEATURES)
    assert str(path) in str(info.value)


def test_check_ranges_message() -> None:
    frame = pd.DataFrame({"Age": [17.0, 30.0, np.nan, 101.0, 150.0], "Family_Size": [1.0] * 5})
    with pytest.raises(DataError) as info:
        check_ranges(frame, {"Family_Size": (1, 20), "Age": (18, 100)}, "input.csv")
    message = str(info.value)
    assert message.startswith("input.csv, column 'Age': 3 row(s) outside the valid range [18, 100]")
    assert message.endswith("sample values: 17, 101, 150")


def test_check_ranges_allows_nan_and_open_bounds() -> None:
    frame = pd.DataFrame({"Age": [18.0, np.nan, 100.0], "Work_Experience": [-5.0, 0.0, 1e9]})
    check_ranges(frame, {"Age": (18, 100), "Work_Experience": (None, None)}, "src")


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


def test_copy_table_from_parquet_matches_read_table(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = tmp_path / "customers.parquet"
    pq.write_table(
        pa.table({
            "Other": ["x", "y", "z", "w"],
            "Family_Size": pa.array([2, None, 4, 1], type=pa.int64()),
            "ID": pa.array([7, 3, 9, 1], type=pa.int64()),
            "Age": pa.array([30.0, float("nan"), 41.5, 22.0]),
            "Work_Experience": pa.array([1.0, 2.0, None, 0.0], type=pa.float32()),
        }),
        source,
    )
    features = ["Age", "Work_Experience", "Family_Size"]

    rows = copy_table(source, "ID", features, tmp_path / "raw.arrow")

    assert rows == 4
    pd.testing.assert_frame_equal(read_frame(tmp_path / "raw.arrow"), read_table(source, "ID", features))


def test_copy_table_parses_through_read_table_when_a_feature_is_text(tmp_path: Path) -> None:
    source = tmp_path / "customers.parquet"
    pd.DataFrame({"ID": [1, 2], "Age": ["30", "forty"], "Work_Experience": [1.0, 2.0], "Family_Size": [1, 2]}).to_parquet(source)

    with pytest.raises(DataError, match="column 'Age'.*'forty'"):
        copy_table(source, "ID", ["Age", "Work_Experience", "Family_Size"], tmp_path / "raw.arrow")
    assert not (tmp_path / "raw.arrow").exists()
