"""somseg.dataset: an input as a dataset of partitions, read as the pipeline reads it."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from somseg.dataset import input_files, plan_input, read_part, read_table
from somseg.errors import DataError

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




def _parquet_files(folder: Path, rows_per_file: int, row_group: int, n: int = 2_500) -> Path:
    folder.mkdir()
    frame = pd.DataFrame({"ID": np.arange(n), "Age": 30.0, "Family_Size": 2.0})
    for index, start in enumerate(range(0, n, rows_per_file)):
        frame.iloc[start : start + rows_per_file].to_parquet(
            folder / f"part-{index:03d}.parquet", index=False, row_group_size=row_group
        )
    return folder


def test_row_groups_are_kept_whole_and_grouped_up_to_the_partition_size(tmp_path) -> None:
    folder = _parquet_files(tmp_path / "dataset", 1_000, 300)
    (folder / "_SUCCESS").write_text("")
    parts = plan_input(folder, ["ID", *FEATURES], 700)
    assert [p.n_rows for p in parts] == [600, 400, 600, 400, 500]
    assert [p.row_groups for p in parts] == [(0, 1), (2, 3), (0, 1), (2, 3), (0, 1)]
    (table,) = read_part(parts[1], "ID", FEATURES, 700)
    assert table.column("ID").to_pylist() == list(range(600, 1000))
    assert table.schema.field("Age").type == pa.float64()


def test_a_glob_and_a_folder_name_the_same_dataset(tmp_path) -> None:
    folder = _parquet_files(tmp_path / "dataset", 1_000, 1_000)
    (folder / ".tmp-part.parquet").write_text("not a part")
    assert input_files(folder) == input_files(str(folder / "part-*.parquet"))
    assert [p.name for p in input_files(folder)] == ["part-000.parquet", "part-001.parquet", "part-002.parquet"]


def test_a_csv_file_is_one_part_split_into_partitions_as_it_is_read(tmp_path) -> None:
    path = tmp_path / "customers.csv"
    pd.DataFrame({"ID": range(2_500), "Age": 40.0, "Family_Size": 3}).to_csv(path, index=False)
    (part,) = plan_input(path, ["ID", *FEATURES], 1_000)
    assert part.kind == "csv" and part.n_rows is None
    assert [t.num_rows for t in read_part(part, "ID", FEATURES, 1_000)] == [1_000, 1_000, 500]


def test_a_part_is_known_by_its_content_not_its_name(tmp_path) -> None:
    first = tmp_path / "a.csv"
    first.write_text("ID,Age,Family_Size\n1,30,1\n", encoding="utf-8")
    second = tmp_path / "b.csv"
    second.write_bytes(first.read_bytes())
    (a,) = plan_input(first, ["ID", *FEATURES], 1_000)
    (b,) = plan_input(second, ["ID", *FEATURES], 1_000)
    assert a.digest == b.digest and a.path != b.path
    second.write_text("ID,Age,Family_Size\n1,31,1\n", encoding="utf-8")
    assert plan_input(second, ["ID", *FEATURES], 1_000)[0].digest != a.digest


def test_missing_column_and_empty_inputs_are_data_errors(tmp_path) -> None:
    pq.write_table(pa.table({"ID": [1], "Age": [30.0]}), tmp_path / "a.parquet")
    with pytest.raises(DataError, match=r"a.parquet lacks column\(s\) Family_Size"):
        plan_input(tmp_path / "a.parquet", ["ID", *FEATURES], 10)
    with pytest.raises(DataError, match="no Parquet files"):
        plan_input(tmp_path / "nothing-*.parquet", ["ID", *FEATURES], 10)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no Parquet files"):
        plan_input(tmp_path / "empty", ["ID", *FEATURES], 10)


def test_a_text_feature_in_parquet_is_parsed_with_the_same_checks(tmp_path) -> None:
    source = tmp_path / "customers.parquet"
    pd.DataFrame({"ID": [1, 2], "Age": ["30", "forty"], "Family_Size": [1, 2]}).to_parquet(source)
    with pytest.raises(DataError, match="column 'Age'.*'forty'"):
        read_table(source, "ID", FEATURES)
    pd.DataFrame({"ID": [1, 2], "Age": ["30", " 41.5"], "Family_Size": [1, 2]}).to_parquet(source)
    np.testing.assert_array_equal(read_table(source, "ID", FEATURES)["Age"], [30.0, 41.5])


def test_a_first_pass_is_computed_on_each_partition_as_it_is_read(tmp_path) -> None:
    from somseg.dataset import feature_values, read_partitions

    source = tmp_path / "c.csv"
    pd.DataFrame({"ID": range(5), "Age": [30, None, 50, 60, 70], "Family_Size": [1, 2, 3, 4, 5]}).to_csv(source, index=False)
    (part,) = plan_input(source, ["ID", *FEATURES], 1_000)

    class Sums:
        def partial(self, values: np.ndarray) -> float:
            return float(np.nansum(values))

    partitions = read_partitions(part, "ID", FEATURES, 3, Sums())
    assert [p.table.num_rows for p in partitions] == [3, 2]
    assert [p.partial for p in partitions] == [30 + 50 + 1 + 2 + 3, 60 + 70 + 4 + 5]
    assert np.isnan(feature_values(partitions[0].table, FEATURES)[1, 0])
    assert [p.partial for p in read_partitions(part, "ID", FEATURES, 3)] == [None, None]


def test_the_numeric_columns_of_any_input_but_the_id(tmp_path: Path) -> None:
    from somseg.dataset import numeric_columns

    frame = pd.DataFrame({
        "CUST_ID": ["C1", "C2", "C3"], "BALANCE": [1.5, np.nan, 3.0], "Segment": ["a", "b", "a"],
        "Kids": [0, 1, 2], "Empty": [np.nan] * 3, "Annual Income (k$)": [15, 16, 17],
    })
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("\ufeff" + frame.to_csv(index=False, sep=";"), encoding="utf-8")
    assert numeric_columns(csv_path, "CUST_ID") == ["BALANCE", "Kids", "Empty", "Annual Income (k$)"]
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    assert numeric_columns(tmp_path / "t.parquet", "CUST_ID") == ["BALANCE", "Kids", "Empty", "Annual Income (k$)"]
    with pytest.raises(DataError, match=r"lacks column\(s\) ID"):
        numeric_columns(csv_path, "ID")
    frame[["CUST_ID", "Segment"]].to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(DataError, match=r"no numeric column besides the id column 'CUST_ID'.*--features"):
        numeric_columns(tmp_path / "text.csv", "CUST_ID")


def test_a_date_column_is_read_as_text_and_turned_into_years_since(tmp_path: Path) -> None:
    source = tmp_path / "marketing.csv"
    source.write_text("\ufeffID;Year_Birth;Dt_Customer\n1;1980;04-09-2012\n2;1970;\n3;1990;31-12-2013\n", encoding="utf-8")
    expressions = {"Age": "2014 - Year_Birth", "Tenure": 'years_since(Dt_Customer, "2014-12-31", "%d-%m-%Y")'}
    (part,) = plan_input(source, ["ID", "Year_Birth", "Dt_Customer"], 1_000)
    (table,) = read_part(part, "ID", ["Age", "Tenure"], 1_000, expressions)
    assert table.column_names == ["ID", "Age", "Tenure"]
    np.testing.assert_allclose(table.column("Tenure").to_numpy(zero_copy_only=False),
                               [848 / 365.2425, np.nan, 365 / 365.2425])
    parquet = tmp_path / "marketing.parquet"
    pd.DataFrame({"ID": [1, 2], "Year_Birth": [1980, 1970],
                  "Dt_Customer": pd.to_datetime(["2012-09-04", None])}).to_parquet(parquet)
    (part,) = plan_input(parquet, ["ID", "Year_Birth", "Dt_Customer"], 1_000)
    (table,) = read_part(part, "ID", ["Age", "Tenure"], 1_000,
                         {**expressions, "Tenure": 'years_since(Dt_Customer, "2014-12-31")'})
    np.testing.assert_allclose(table.column("Tenure").to_numpy(zero_copy_only=False), [848 / 365.2425, np.nan])


def test_dates_that_do_not_parse_name_the_file_the_column_and_the_feature(tmp_path: Path) -> None:
    source = tmp_path / "marketing.csv"
    source.write_text("ID,Dt_Customer\n1,2012-09-04\n2,04-09-2012\n", encoding="utf-8")
    (part,) = plan_input(source, ["ID", "Dt_Customer"], 1_000)
    with pytest.raises(DataError, match=r"input file .*marketing.csv, column 'Dt_Customer': 1 value\(s\) are not "
                                        r"dates .*'04-09-2012' \(feature 'Tenure'"):
        read_part(part, "ID", ["Tenure"], 1_000, {"Tenure": 'days_since(Dt_Customer, "2014-12-31")'})


def _screened(path: Path, policy: str, features=("Age", "Family_Size"), expressions=None, bounds=None):
    from somseg.dataset import input_columns, read_partitions
    from somseg.validity import row_screen

    bounds = bounds or [(18, 100), (1, 20)]
    columns = input_columns(list(features), expressions)
    screen = row_screen(list(features), bounds, columns, policy)
    (part,) = plan_input(path, ["ID", *columns], 1_000)
    return read_partitions(part, "ID", list(features), 1_000, None, expressions, screen=screen)


def test_drop_leaves_out_rows_not_numbers_or_out_of_range_and_records_each_value(tmp_path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("ID,Age,Family_Size\n1,30,1\n2,abc,2\n3,,3\n4,150,0\n5,18,20\n", encoding="utf-8")

    (partition,) = _screened(path, "drop")

    kept = partition.table.to_pandas()
    assert kept["ID"].tolist() == [1, 3, 5] and kept["Age"].dtype == np.float64
    assert np.isnan(kept["Age"].iloc[1]), "a missing value is not invalid"
    assert partition.rejected.to_pylist() == [
        {"id": 2, "column": "Age", "value": "abc", "reason": "not a number"},
        {"id": 4, "column": "Age", "value": "150", "reason": "above max 100"},
        {"id": 4, "column": "Family_Size", "value": "0", "reason": "below min 1"},
    ]
    assert (partition.invalid.n_rows, partition.invalid.n_invalid) == (5, 2)


def test_fail_keeps_refusing_text_as_the_file_is_read(tmp_path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("ID,Age,Family_Size\n1,30,1\n2,abc,2\n", encoding="utf-8")

    with pytest.raises(DataError, match=r"column 'Age': 1 row\(s\) are not numbers \(first at data row 2\)"):
        _screened(path, "fail")


def test_fail_keeps_out_of_range_rows_and_counts_them(tmp_path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("ID,Age,Family_Size\n1,30,1\n2,150,2\n", encoding="utf-8")

    (partition,) = _screened(path, "fail")

    assert partition.table.num_rows == 2 and partition.invalid.n_invalid == 1


def test_drop_reads_text_columns_of_parquet_too(tmp_path) -> None:
    path = tmp_path / "t.parquet"
    pd.DataFrame({"ID": ["a", "b", "c"], "Age": ["30", "n/a", "40"], "Family_Size": [1.0, 2.0, 30.0]}).to_parquet(path)

    (partition,) = _screened(path, "drop")

    assert partition.table.column("ID").to_pylist() == ["a"]
    assert partition.table.schema.field("Age").type == pa.float64()
    assert [(r["id"], r["reason"]) for r in partition.rejected.to_pylist()] == [("b", "not a number"), ("c", "above max 20")]


def test_derived_features_are_screened_after_deriving_and_their_inputs_as_numbers(tmp_path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("ID,Year_Birth,Family_Size\n1,1980,1\n2,2010,2\n3,19x0,3\n", encoding="utf-8")

    (partition,) = _screened(path, "drop", expressions={"Age": "2014 - Year_Birth"})

    assert partition.table.column_names == ["ID", "Age", "Family_Size"]
    assert partition.table.column("Age").to_pylist() == [34.0]
    assert partition.rejected.to_pylist() == [
        {"id": 2, "column": "Age", "value": "4", "reason": "below min 18"},
        {"id": 3, "column": "Year_Birth", "value": "19x0", "reason": "not a number"},
    ]


def test_the_first_pass_sees_only_the_rows_kept(tmp_path) -> None:
    from somseg.cleaning import CleaningFit
    from somseg.dataset import read_partitions
    from somseg.validity import row_screen

    path = tmp_path / "t.csv"
    path.write_text("ID,Age,Family_Size\n1,30,1\n2,150,2\n3,10,2\n", encoding="utf-8")
    bounds = [(18.0, 100.0), (1.0, 20.0)]
    learner = CleaningFit(list(FEATURES), bounds)
    (part,) = plan_input(path, ["ID", *FEATURES], 1_000)

    (partition,) = read_partitions(part, "ID", FEATURES, 1_000, learner.request(), None,
                                   screen=row_screen(FEATURES, bounds, FEATURES, "drop"))

    assert partition.partial.n_rows == 1 and not partition.partial.outside.any()
    learner.update(partition.partial)  # the cleaning's own range check finds nothing left to refuse


def test_drop_also_leaves_out_dates_and_levels_that_do_not_parse(tmp_path: Path) -> None:
    from somseg.dataset import read_partitions
    from somseg.validity import row_screen

    source = tmp_path / "d.csv"
    pd.DataFrame({"ID": [1, 2, 3, 4], "Age": [30, 40, "x", 50], "S": ["Low", "Huge", "High", None],
                  "Dt": ["2014-01-01", "2014-02-30", "2013-05-05", ""]}).to_csv(source, index=False)
    (part,) = plan_input(source, ["ID", "Age", "S", "Dt"], 1_000)
    screen = row_screen(["Age", "T"], [(18, 100), (None, None)], ["Age", "Dt"], "drop", {"Dt": "date", "S": "category"})
    (partition,) = read_partitions(part, "ID", ["Age", "T", "S"], 1_000, None, {"T": 'days_since(Dt, "2014-12-31")'},
                                   {"S": ("ordinal", ("Low", "Average", "High"))}, screen=screen)

    assert partition.table.column("ID").to_pylist() == [1, 4]
    np.testing.assert_array_equal(partition.table.column("S").to_numpy(zero_copy_only=False), [0.0, np.nan])
    assert partition.rejected.to_pylist() == [
        {"id": 2, "column": "Dt", "value": "2014-02-30", "reason": "not a date"},
        {"id": 2, "column": "S", "value": "Huge", "reason": "not a category"},
        {"id": 3, "column": "Age", "value": "x", "reason": "not a number"},
    ]
    assert partition.invalid.n_invalid == 2
    assert "column 'S': 1 row(s) (1 not a category); sample values: Huge" in partition.invalid.problems()


@pytest.mark.parametrize(("rows", "expected"), [
    (["1,30,100", "2,40,200,999", "3,50,300"], r"1 row\(s\) have a different number of fields than the header's 3: "
                                                r"line 3 has 4 \('2,40,200,999'\)"),
    (["1,30,100", "2,40", "3,50,300"], r"line 3 has 2 \('2,40'\)"),
    (["1,30,100", "2,40,200", "3,5"], r"line 4 has 2 \('3,5'\)"),  # a file cut off in the middle of a row
])
def test_a_row_with_a_field_too_many_or_too_few_is_refused_whatever_columns_are_read(
    tmp_path: Path, rows: list[str], expected: str
) -> None:
    source = tmp_path / "c.csv"
    source.write_text("\n".join(["ID,Age,Income", *rows]), encoding="utf-8")
    with pytest.raises(DataError, match=f"input file .*c.csv: .*{expected}"):
        read_table(source, "ID", ["Age"])


def test_quoted_delimiters_and_newlines_are_one_field(tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_text('\ufeffID;Name;Age\n1;"Smith; John";30\n2;"two\nlines";40\n', encoding="utf-8")
    np.testing.assert_array_equal(read_table(source, "ID", ["Age"])["Age"], [30.0, 40.0])


@pytest.mark.parametrize("order", ["C", "F"])
def test_feature_values_fill_every_row_in_either_order(monkeypatch, order) -> None:
    import somseg.dataset
    from somseg.dataset import feature_values

    monkeypatch.setattr(somseg.dataset, "_FILL_ROWS", 4)  # blocks of rows, the last one short
    columns = {"a": pa.array([1.0, None, 3.0, 4.0, 5.0, 6.0, None, 8.0, 9.0, 10.0, 11.0]),
               "b": pa.array(range(11), type=pa.int64()), "c": pa.array(np.linspace(0, 1, 11))}
    table = pa.table(columns)
    values = feature_values(table, ["c", "a", "b"], order)
    expected = np.column_stack([np.linspace(0, 1, 11), table.column("a").to_numpy(), np.arange(11.0)])
    np.testing.assert_array_equal(values, expected)
    assert values.dtype == np.float64 and values.flags[f"{order}_CONTIGUOUS"]
