"""The input of a run: a dataset of partitions.

Every input is a dataset. A single CSV file is one source part, split into
partitions as it is read; a single Parquet file, a folder of Parquet files
or a glob of them is one source part per run of consecutive row groups of at
most ``partition_rows`` rows. Planning reads only Parquet footers and
fingerprints each file's content, so a cache keyed on a part misses when the
file changes, and hits for a copy of the same file under another name.

Reading keeps only the id column and the features: features come back as
float64 with NaN for missing, the id column unchanged (integer IDs stay
integers, IDs such as ``007`` stay text).
"""

import csv
import glob
import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from somseg.encoding import UnknownLevelError, count_levels, encode, model_columns, unknown_levels
from somseg.errors import DataError
from somseg.expressions import DateParseError, bad_dates, parse_expression
from somseg.io import file_sha256
from somseg.stats import Request
from somseg.validity import InvalidRows, RowScreen, ScreenedRows, parse_numbers

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
_SNIFF_BYTES = 64 * 1024
_SCHEMA_SAMPLE_ROWS = 10_000  # CSV rows read to tell numeric columns from the others
_SAMPLE_VALUES = 5
_GLOB_CHARS = "*?["
_FILL_ROWS = 8192  # rows of a feature array filled at once: a block of a few features stays in cache


@dataclass(frozen=True)
class SourcePart:
    """A piece of the input that one task reads: a CSV file, or row groups of a Parquet file.

    Attributes
    ----------
    path : str
        The file.
    kind : {'csv', 'parquet'}
    row_groups : tuple of int
        Parquet row groups, in order (empty for CSV: the whole file).
    n_rows : int or None
        Rows, known from the footer for Parquet; None for CSV until read.
    digest : str
        SHA-256 of the file's content.
    """

    path: str
    kind: str
    row_groups: tuple[int, ...]
    n_rows: int | None
    digest: str


def plan_input(source: str | Path, columns: Sequence[str], partition_rows: int) -> list[SourcePart]:
    """The source parts of an input: a CSV or Parquet file, a folder or a glob of Parquet files.

    Parameters
    ----------
    source : str or Path
        ``.csv``/``.tsv``/``.txt`` (one part), ``.parquet``/``.pq``, a folder
        (searched recursively for Parquet files) or a glob such as
        ``data/part-*.parquet``. In folders, names that start with ``.`` or
        ``_`` (``_SUCCESS``, ``_metadata``, temporary files) are skipped.
    columns : sequence of str
        Columns every Parquet file must have (the id and the features).
    partition_rows : int
        Most rows per Parquet part; a row group is never split.

    Returns
    -------
    list of SourcePart
        In dataset order (sorted paths, row groups in order).

    Raises
    ------
    DataError
        If the input is missing, of an unsupported kind, not readable
        Parquet, or lacks a column.
    """
    files = input_files(source)
    if len(files) == 1 and files[0].suffix.lower() in CSV_SUFFIXES:
        return [SourcePart(str(files[0]), "csv", (), None, file_sha256(files[0]))]
    parts = []
    for path in files:
        digest = file_sha256(path)
        for groups, n_rows in _row_group_runs(path, columns, partition_rows):
            parts.append(SourcePart(str(path), "parquet", groups, n_rows, digest))
    if not parts:
        raise DataError(f"input {source} has no rows")
    return parts


def source_digest(parts: Sequence[SourcePart]) -> str:
    """SHA-256 of an input's content from its plan: the file's own for one file, else of the files' SHA-256s in order.

    Parameters
    ----------
    parts : sequence of SourcePart
        The plan of the input (:func:`plan_input`); a file split into several
        parts counts once.
    """
    digests = list(dict.fromkeys(part.digest for part in parts))
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256("".join(f"{digest}\n" for digest in digests).encode()).hexdigest()


def input_files(source: str | Path) -> list[Path]:
    """The files of an input, in dataset order; see :func:`plan_input`."""
    text = str(source)
    if any(char in text for char in _GLOB_CHARS):
        candidates = sorted(Path(name) for name in glob.glob(text, recursive=True))
        files = [path for path in candidates if _is_parquet_part(path)]
        if not files:
            raise DataError(f"no Parquet files (.parquet, .pq) match {source}")
        return files
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if _is_parquet_part(p) and not _hidden_below(p, path))
        if not files:
            raise DataError(f"input folder {path} holds no Parquet files (.parquet, .pq)")
        return files
    if not path.exists():
        raise DataError(f"input file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        raise DataError(
            f"input file {path}: unsupported extension {path.suffix!r}; "
            f"use one of {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}, or a folder of Parquet files"
        )
    return [path]


def protected_paths(
    source: str, work_dir: str, model_dir: str | None = None, registry: str | None = None
) -> list[tuple[str, Path]]:
    """What a run reads or keeps, which its output folder may not be, hold or lie inside.

    Raises
    ------
    DataError
        If the input does not exist or is of an unsupported kind.
    """
    protected = [("the input file", path) for path in input_files(source)]
    if Path(source).is_dir():
        protected.append(("the input folder", Path(source)))
    protected.append(("the work folder", Path(work_dir)))
    if model_dir is not None:
        protected.append(("the model", Path(model_dir)))
    if registry is not None:
        protected.append(("the model registry", Path(registry)))
    return protected


def numeric_columns(source: str | Path, id_column: str, sample_rows: int = _SCHEMA_SAMPLE_ROWS) -> list[str]:
    """The columns of an input that hold numbers, but the id column, in the input's order.

    The features of a run whose config names none. A Parquet column counts
    when its type is an integer, floating-point or decimal type (taken from
    the first file's schema); a CSV column when pandas reads its first
    ``sample_rows`` rows as numbers (empty cells allowed: a column empty
    throughout counts too, and then fails the check of its missing share).

    Parameters
    ----------
    source : str or Path
        The input, as :func:`plan_input` takes it.
    id_column : str
        Never a feature; it must be present.
    sample_rows : int
        Rows of a CSV file read to infer the types.

    Returns
    -------
    list of str

    Raises
    ------
    DataError
        If the input cannot be read, lacks the id column, or has no numeric column but it.
    """
    first = input_files(source)[0]
    if first.suffix.lower() in PARQUET_SUFFIXES:
        schema = pq.read_schema(first)
        names = list(schema.names)
        numeric = [field.name for field in schema
                   if pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
                   or pa.types.is_decimal(field.type)]
    else:
        try:
            frame = pd.read_csv(first, sep=sniff_delimiter(first), encoding="utf-8-sig", nrows=sample_rows,
                                skipinitialspace=True)
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
            raise unreadable_csv(first, exc) from exc
        names = csv_header(first)
        _refuse_repeated_names(first, names, names)
        frame.columns = names
        numeric = [name for name in names
                   if pd.api.types.is_numeric_dtype(frame[name]) and not pd.api.types.is_bool_dtype(frame[name])]
    _require_columns(first, [id_column], names)
    features = [name for name in numeric if name != id_column]
    if not features:
        raise DataError(
            f"input file {first} has no numeric column besides the id column {id_column!r}; "
            f"its columns: {', '.join(names[:20])}. Name the features in the config (features:) or with --features"
        )
    return features


def _is_parquet_part(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in PARQUET_SUFFIXES and path.name[0] not in "._"


def _hidden_below(path: Path, root: Path) -> bool:
    return any(part[0] in "._" for part in path.relative_to(root).parts[:-1])


def _row_group_runs(path: Path, columns: Sequence[str], max_rows: int) -> list[tuple[tuple[int, ...], int]]:
    try:
        metadata = pq.ParquetFile(path).metadata
    except Exception as exc:  # pyarrow raises several unrelated types here
        raise DataError(f"input file {path} is not a readable Parquet file: {exc}") from exc
    _require_columns(path, columns, metadata.schema.names)
    runs: list[tuple[tuple[int, ...], int]] = []
    current: list[int] = []
    rows = 0
    for index in range(metadata.num_row_groups):
        group_rows = metadata.row_group(index).num_rows
        if current and rows + group_rows > max_rows:
            runs.append((tuple(current), rows))
            current, rows = [], 0
        if group_rows:
            current.append(index)
            rows += group_rows
    if current:
        runs.append((tuple(current), rows))
    return runs


# A coded feature: name -> (kind, levels), as SegmentationConfig.encodings gives it.
Encodings = Mapping[str, tuple[str, tuple[str, ...]]]


def coded_columns(encodings: Encodings | None) -> dict[str, str]:
    """The model columns of the coded features: column -> the input column it comes from."""
    columns = {}
    for name, (kind, levels) in (encodings or {}).items():
        for column in model_columns(name, kind, levels):  # type: ignore[arg-type]
            columns[column] = name
    return columns


def input_columns(
    features: Sequence[str], expressions: Mapping[str, str] | None = None, encodings: Encodings | None = None
) -> list[str]:
    """The input columns the model columns ``features`` are read, coded or derived from, in order."""
    expressions, coded = expressions or {}, coded_columns(encodings)
    plain = [coded.get(name, name) for name in features if name not in expressions]
    used = [column for name in features if name in expressions for column in parse_expression(expressions[name]).columns]
    return list(dict.fromkeys([*plain, *used]))


def date_columns(expressions: Mapping[str, str] | None) -> list[str]:
    """The input columns the expressions read as dates (not numbers)."""
    return list(dict.fromkeys(c for text in (expressions or {}).values() for c in parse_expression(text).date_columns))


def read_part(
    part: SourcePart,
    id_column: str,
    features: Sequence[str],
    partition_rows: int,
    expressions: Mapping[str, str] | None = None,
    encodings: Encodings | None = None,
) -> list[pa.Table]:
    """The id column and the features of a source part, as Arrow tables of at most ``partition_rows`` rows.

    Features are float64 (missing values null), the id column as read. A
    feature with an expression (``expressions``, name -> text) is derived
    from the input columns it names, which are read and checked as numbers
    (or dates) but not kept. An ordinal or categorical feature
    (``encodings``) is read as text and coded (:mod:`somseg.encoding`):
    ``features`` then names its model columns.

    Raises
    ------
    DataError
        If the file is unreadable, a column is absent, or a feature holds
        values that are not numbers (dates, levels).
    """
    if expressions or encodings:
        numbers, text = _columns_to_read(features, expressions, encodings)
        tables = _read_part(part, id_column, numbers, partition_rows, text)
        return [_derive(table, id_column, features, expressions or {}, encodings or {}, part.path) for table in tables]
    return _read_part(part, id_column, features, partition_rows)


def text_columns(expressions: Mapping[str, str] | None, encodings: Encodings | None) -> list[str]:
    """The input columns read as text: the dates expressions use, and the ordinal and categorical features."""
    return list(dict.fromkeys([*date_columns(expressions), *(encodings or {})]))


def _columns_to_read(
    features: Sequence[str], expressions: Mapping[str, str] | None, encodings: Encodings | None
) -> tuple[list[str], list[str]]:
    """The input columns the model columns ``features`` need: those read as numbers, and those read as text."""
    text = text_columns(expressions, encodings)
    return [name for name in input_columns(features, expressions, encodings) if name not in text], text


def _read_part(
    part: SourcePart,
    id_column: str,
    features: Sequence[str],
    partition_rows: int,
    raw: Sequence[str] = (),
    keep_text: bool = False,
) -> list[pa.Table]:
    if part.kind == "parquet":
        return [_read_parquet_groups(Path(part.path), part.row_groups, id_column, features, raw, keep_text)]
    frame = read_csv(Path(part.path), id_column, features, raw, keep_text)
    tables = [
        pa.Table.from_pandas(frame.iloc[start : start + partition_rows], preserve_index=False)
        for start in range(0, max(len(frame), 1), partition_rows)
    ]
    return tables


def _derive(
    table: pa.Table,
    id_column: str,
    features: Sequence[str],
    expressions: Mapping[str, str],
    encodings: Encodings,
    source: str,
) -> pa.Table:
    inputs = {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names if name != id_column}
    for name, (kind, levels) in encodings.items():
        try:
            coded = encode(inputs[name], name, kind, levels)  # type: ignore[arg-type]
        except UnknownLevelError as exc:
            raise DataError(f"input file {source}, {exc}") from exc
        inputs.update(zip(model_columns(name, kind, levels), coded, strict=True))  # type: ignore[arg-type]
    columns = {id_column: table.column(id_column)}
    for name in features:
        try:
            values = parse_expression(expressions[name]).evaluate(inputs) if name in expressions else inputs[name]
        except DateParseError as exc:
            raise DataError(f"input file {source}, {exc} (feature {name!r}: {expressions[name]})") from exc
        columns[name] = pa.array(values, type=pa.float64(), from_pandas=True)
    return pa.table(columns)


def input_levels(source: str | Path, id_column: str, columns: Sequence[str]) -> dict[str, Counter[str]]:
    """How often each level of each of ``columns`` occurs in an input (text, stripped, missing skipped).

    Read part by part and added, as :func:`somseg.encoding.learn_levels` wants them.
    """
    totals: dict[str, Counter[str]] = {name: Counter() for name in columns}
    for part in plan_input(source, list(columns), partition_rows=2**62):
        frame = (
            pq.ParquetFile(part.path).read_row_groups(list(part.row_groups), columns=list(columns)).to_pandas()
            if part.kind == "parquet"
            else read_csv(Path(part.path), id_column, [], columns)
        )
        for name in columns:
            totals[name] += count_levels(frame[name].to_numpy())
    return totals


@dataclass(frozen=True)
class Partition:
    """A partition as read, and a learner's partial result on its features (None when none was asked).

    With a :class:`somseg.validity.RowScreen`, ``invalid`` is the screen's
    partial result and ``rejected`` the records of the invalid values
    (``table`` then lacks the rows the screen dropped); else both are None.
    """

    table: pa.Table
    partial: Any
    invalid: InvalidRows | None = None
    rejected: pa.Table | None = None


def read_partitions(
    part: SourcePart,
    id_column: str,
    features: Sequence[str],
    partition_rows: int,
    first_pass: Request | None = None,
    expressions: Mapping[str, str] | None = None,
    encodings: Encodings | None = None,
    screen: RowScreen | None = None,
) -> list[Partition]:
    """:func:`read_part`, with the partial result of ``first_pass`` on each partition's features.

    A learner whose first pass needs only the raw features (such as the
    cleaning's profile) gets it from the read, not from reading every
    partition again. With ``screen``, each partition is screened for
    invalid rows first (:func:`read_screened`), so the first pass sees only
    the rows that are kept.
    """
    if screen is not None:
        return [
            Partition(table, None if first_pass is None else first_pass.partial(feature_values(table, features, "F")),
                      screened.invalid, screened.rejected)
            for table, screened in read_screened(part, id_column, features, partition_rows, screen, expressions, encodings)
        ]
    return [
        Partition(table, None if first_pass is None else first_pass.partial(feature_values(table, features, "F")))
        for table in read_part(part, id_column, features, partition_rows, expressions, encodings)
    ]


def read_screened(
    part: SourcePart,
    id_column: str,
    features: Sequence[str],
    partition_rows: int,
    screen: RowScreen,
    expressions: Mapping[str, str] | None = None,
    encodings: Encodings | None = None,
) -> list[tuple[pa.Table, ScreenedRows]]:
    """:func:`read_part` with each partition screened for invalid rows (:mod:`somseg.validity`).

    Values that are not numbers are refused as the file is read when the
    screen's policy is ``fail`` (the error names the file, the column, the
    first row and sample values), and recorded when it is ``drop``. Derived
    features are screened after they are derived; the input columns only
    expressions use, as numbers only. Dates and levels (read as text) are
    checked as they are parsed or coded: a value that is neither stops the run.

    Returns
    -------
    list of (pyarrow.Table, ScreenedRows)
        Each partition (id and features, without the rows the screen
        dropped) and what the screen found in it.
    """
    expressions, encodings = expressions or {}, encodings or {}
    read, text = _columns_to_read(features, expressions, encodings)
    position = {name: index for index, name in enumerate(screen.columns)}
    numbers = [n for n, kind in zip(screen.columns, screen.parsed_as or (), strict=False) if kind == "number"]
    results = []
    for raw in _read_part(part, id_column, read, partition_rows, text, keep_text=screen.policy == "drop"):
        parsed, not_numbers, texts = _parse_columns(raw, id_column, read)
        if screen.policy == "drop":
            parsed = _screen_text(parsed, screen, expressions, encodings, not_numbers, texts)
        derived = expressions or encodings
        table = _derive(parsed, id_column, features, expressions, encodings, part.path) if derived else parsed
        # The table's own columns, screened where they lie: no matrix is built for them.
        flags_only = [name for name in screen.columns if screen.parsed_as and name not in numbers]
        missing = np.full(table.num_rows, np.nan) if flags_only else None
        values = [
            (table if name in features else parsed).column(name).to_numpy()
            if name not in flags_only else missing  # dates and levels have no range: only their flags count
            for name in screen.columns
        ]
        flags = {position[name]: flagged for name, flagged in not_numbers.items() if name in position}
        screened = screen.screen(table.column(id_column), values, flags,
                                 {position[name]: text for name, text in texts.items()}, part.path)
        kept = table if screened.keep.all() else table.filter(pa.array(screened.keep))
        results.append((kept, screened))
    return results


def _screen_text(
    table: pa.Table,
    screen: RowScreen,
    expressions: Mapping[str, str],
    encodings: Encodings,
    not_numbers: dict[str, np.ndarray],
    texts: dict[str, pa.Array],
) -> pa.Table:
    """Flag the dates and levels of ``table`` that do not parse, and blank them so that deriving does not stop on them."""
    formats = {c: f for text in expressions.values() for c, f in parse_expression(text).date_formats.items()}
    for name, kind in zip(screen.columns, screen.parsed_as or (), strict=False):
        if kind == "number":
            continue
        values = table.column(name).to_numpy(zero_copy_only=False)
        bad = unknown_levels(values, encodings[name][1]) if kind == "category" else bad_dates(values, formats.get(name))
        not_numbers[name], texts[name] = bad, pc.cast(table.column(name).combine_chunks(), pa.string())
        if bad.any():
            blanked = pc.if_else(pa.array(bad), pa.scalar(None, table.column(name).type), table.column(name))
            table = table.set_column(table.schema.get_field_index(name), name, blanked)
    return table


def _parse_columns(
    table: pa.Table, id_column: str, columns: Sequence[str]
) -> tuple[pa.Table, dict[str, np.ndarray], dict[str, pa.Array]]:
    """``table`` with its text columns parsed as float64; where values were not numbers, and their text."""
    not_numbers: dict[str, np.ndarray] = {}
    texts: dict[str, pa.Array] = {}
    for name in columns:
        column = table.column(name)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        numbers, bad = parse_numbers(column.to_pandas())
        not_numbers[name], texts[name] = bad, column.combine_chunks()
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, pa.array(numbers, type=pa.float64(), from_pandas=True))
    # The reader's pandas metadata would turn the parsed columns back into text on to_pandas().
    return (table.replace_schema_metadata(None) if texts else table), not_numbers, texts


def feature_columns(table: pa.Table, features: Sequence[str]) -> list[np.ndarray]:
    """The features of an ingested table, one array per feature, NaN where missing.

    A column without missing values in one chunk is the table's own memory,
    not a copy: valid as long as the table is.
    """
    return [table.column(name).to_numpy() for name in features]


def feature_values(table: pa.Table, features: Sequence[str], order: str = "C") -> np.ndarray:
    """The features of an ingested table as a float64 array (n_rows, n_features), NaN where missing.

    ``order`` 'F' gives a column-major array: for passes that work column by
    column (summaries, order statistics), whose columns are then contiguous
    and are filled without striding over every row.
    """
    values = np.empty((table.num_rows, len(features)), dtype=np.float64, order=order)
    columns = feature_columns(table, features)
    if order == "F":
        for index, column in enumerate(columns):
            values[:, index] = column
        return values
    return fill_rows(values, columns)


def fill_rows(out: np.ndarray, columns: Sequence[np.ndarray], first: int = 0) -> np.ndarray:
    """Fill the row-major ``out`` (n, n_columns) with rows ``first ... first + n - 1`` of ``columns``; returns ``out``.

    A few thousand rows at a time, so that the strided writes of every column
    land in cache lines the rows keep, rather than in a new line per value.
    """
    for start in range(0, len(out), _FILL_ROWS):
        rows = out[start : start + _FILL_ROWS]
        for index, column in enumerate(columns):
            rows[:, index] = column[first + start : first + start + len(rows)]
    return out


def read_table(path: str | Path, id_column: str, features: Sequence[str]) -> pd.DataFrame:
    """A whole input as one frame: columns ``[id_column, *features]``, features float64.

    Parameters
    ----------
    path : str or Path
        Anything :func:`plan_input` accepts.
    id_column : str
    features : sequence of str

    Returns
    -------
    pandas.DataFrame
    """
    columns = [id_column, *features]
    parts = plan_input(path, columns, partition_rows=2**62)
    tables = [table for part in parts for table in read_part(part, id_column, features, 2**62)]
    return pa.concat_tables(tables).to_pandas()[columns]


def _read_parquet_groups(
    path: Path,
    groups: tuple[int, ...],
    id_column: str,
    features: Sequence[str],
    raw: Sequence[str] = (),
    keep_text: bool = False,
) -> pa.Table:
    columns = [id_column, *features, *raw]
    try:
        table = pq.ParquetFile(path).read_row_groups(list(groups), columns=columns)
    except Exception as exc:  # pyarrow raises several unrelated types here
        raise DataError(f"input file {path} is not a readable Parquet file: {exc}") from exc
    for name in features:
        column = table.column(name)
        if keep_text and (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue  # parsed, and its values that are not numbers recorded, by read_screened
        table = table.set_column(table.schema.get_field_index(name), name, _float_column(column, path, name))
    # The writer's pandas metadata would turn the parsed features back into its dtypes on to_pandas().
    return table.select(columns).replace_schema_metadata(None)


def _float_column(column: pa.ChunkedArray, path: Path, name: str) -> pa.ChunkedArray:
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind):
        return column.cast(pa.float64())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        values = as_float(column.to_pandas(), path, name)
        return pa.chunked_array([pa.array(values.to_numpy(), type=pa.float64(), from_pandas=True)])
    raise DataError(f"input file {path}, column {name!r}: values of type {kind} are not numbers")


def read_csv(
    path: Path, id_column: str, features: Sequence[str], raw: Sequence[str] = (), keep_text: bool = False
) -> pd.DataFrame:
    """The id column and the features of a CSV file; delimiter sniffed, UTF-8 with or without BOM.

    The ``raw`` columns (dates, levels) are kept as text, the features parsed
    as numbers; with ``keep_text``, a feature that holds values that are not
    numbers is kept as text rather than refused.
    """
    columns = [id_column, *features, *raw]
    delimiter = sniff_delimiter(path)
    try:
        raw_header = pd.read_csv(path, sep=delimiter, nrows=0, encoding="utf-8-sig").columns
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise unreadable_csv(path, exc) from exc
    _require_columns(path, columns, [str(name).strip() for name in raw_header])
    _refuse_repeated_names(path, csv_header(path, delimiter), columns)
    check_csv_structure(path, delimiter, len(raw_header))
    try:
        frame = pd.read_csv(
            path,
            sep=delimiter,
            encoding="utf-8-sig",
            usecols=lambda name: str(name).strip() in columns,
            # IDs are read as text so that leading zeros survive; they are
            # turned back into integers only when that loses nothing.
            dtype={name: str for name in raw_header if str(name).strip() in (id_column, *raw)},
            skipinitialspace=True,
        )
    except UnicodeDecodeError as exc:
        raise unreadable_csv(path, exc) from exc
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"input file {path} could not be parsed as CSV: {exc}") from exc
    frame.columns = [str(name).strip() for name in frame.columns]
    frame[id_column] = _restore_integer_ids(frame[id_column])
    for name in features:
        frame[name] = _as_text(frame[name]) if keep_text else as_float(frame[name], path, name)
    return frame[columns].reset_index(drop=True)


def check_csv_structure(path: Path, delimiter: str, n_fields: int) -> None:
    """Refuse a CSV file with a row of more or fewer fields than its header.

    Reading some columns only, pandas would drop a row's extra fields (the
    row then trains on shifted values) or fill missing ones with NaN (then
    imputed). Every row is tokenised here, whatever columns are used, by
    pyarrow's parser (quoted fields, quoted newlines and a BOM understood),
    converting one column only.

    Raises
    ------
    DataError
        Naming the file, how many rows are malformed, and the first ones with
        their line number, field count and text.
    """
    bad: list[Any] = []

    def collect(row: Any) -> str:
        bad.append(row)
        return "skip"

    try:
        # The header's fields are given names of our own, so that any header (blank or repeated names) reads.
        names = [f"f{index}" for index in range(n_fields)]
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=collect),
            convert_options=pacsv.ConvertOptions(include_columns=names[:1], column_types={names[0]: pa.string()}),
        )
        for _ in reader:
            pass
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise unreadable_csv(path, exc) from exc
    if not bad:
        return
    content = path.read_bytes()
    shown = []
    for row in bad[:_SAMPLE_VALUES]:
        found = content.find(row.text.encode("utf-8"))
        line = content.count(b"\n", 0, found) + 1 if found >= 0 else "?"
        shown.append(f"line {line} has {row.actual_columns} ({row.text[:80]!r})")
    raise DataError(
        f"input file {path}: {len(bad)} row(s) have a different number of fields than the header's "
        f"{bad[0].expected_columns}: {'; '.join(shown)}. A row with a field too many or too few would be read "
        "shifted or cut short; correct the file (a value holding the delimiter must be quoted)"
    )


def csv_header(path: Path, delimiter: str | None = None) -> list[str]:
    """The names of a CSV file's header as written (stripped), repeats kept; pandas would rename a repeat."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        row = next(csv.reader(handle, delimiter=delimiter or sniff_delimiter(path)), [])
    return [name.strip() for name in row]


def _refuse_repeated_names(path: Path, header: Sequence[str], used: Sequence[str]) -> None:
    # Two columns of one name: which one a reader takes is an accident of the reader.
    repeated = sorted(name for name, count in Counter(header).items() if count > 1 and name in used)
    if repeated:
        raise DataError(f"input file {path}: the header names column(s) {', '.join(map(repr, repeated))} more than "
                        "once; rename the repeats so that each column the run reads has one name")


def unreadable_csv(path: Path, exc: Exception) -> DataError:
    """The error for a CSV file that cannot be decoded or tokenised; for bad bytes, where the first one is."""
    if isinstance(exc, UnicodeDecodeError) or "UTF8" in str(exc) or "UTF-8" in str(exc):
        where = _first_bad_byte(path)
        if where is not None:
            offset, line, byte = where
            return DataError(
                f"input file {path} is not UTF-8 text: byte 0x{byte:02x} on line {line} (offset {offset}) is not "
                "UTF-8; save the file as UTF-8 (Excel: 'CSV UTF-8'), or convert it, e.g. iconv -f latin1 -t utf-8"
            )
    return DataError(f"input file {path} is not a readable CSV: {exc}")


def _first_bad_byte(path: Path, block_size: int = 1 << 20) -> tuple[int, int, int] | None:
    """Offset, line number and value of the first byte that is not valid UTF-8, if any."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines = 0, 1
    with open(path, "rb") as handle:
        while block := handle.read(block_size):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                # exc.object is what the decoder held back from the previous block, then this block.
                start = exc.start - (len(exc.object) - len(block))
                return offset + start, lines + block.count(b"\n", 0, max(start, 0)), exc.object[exc.start]
            offset += len(block)
            lines += block.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:  # the file ends inside a character
        return offset - len(exc.object) + exc.start, lines, exc.object[exc.start]
    return None


def sniff_delimiter(path: str | Path) -> str:
    """Guess a CSV file's delimiter from its first 64 KiB (comma if unsure)."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        sample = handle.read(_SNIFF_BYTES)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _require_columns(path: Path, wanted: Sequence[str], available: Sequence[str]) -> None:
    missing = [name for name in wanted if name not in available]
    if missing:
        shown = ", ".join(map(str, list(available)[:20]))
        raise DataError(f"input file {path} lacks column(s) {', '.join(missing)}; it has: {shown}")


def _restore_integer_ids(ids: pd.Series) -> pd.Series:
    text = ids.astype("string")
    canonical = text.str.fullmatch(r"-?(0|[1-9]\d{0,17})")
    if len(text) and bool(canonical.fillna(False).all()):
        return text.astype("int64")
    return ids.astype(object).where(ids.notna(), None)


def _as_text(values: pd.Series) -> pd.Series:
    """A column as float64 when it reads as numbers, else as text (one type for Arrow, whatever pandas mixed)."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    return values.astype("string")


def as_float(values: pd.Series, path: Path | str, column: str) -> pd.Series:
    """A column as float64, or a DataError naming the file, the column, the row count and sample values."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    numbers, bad = parse_numbers(values)
    if bad.any():
        rows = np.flatnonzero(bad)
        samples = ", ".join(repr(v) for v in values.iloc[rows[:_SAMPLE_VALUES]].tolist())
        raise DataError(
            f"input file {path}, column {column!r}: {len(rows)} row(s) are not numbers "
            f"(first at data row {rows[0] + 1}); sample values: {samples}"
        )
    return pd.Series(numbers, index=values.index, name=values.name)
