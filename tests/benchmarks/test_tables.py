"""benchmarks/tables.py: the three kinds of generated table, small."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "tables.py"


@pytest.fixture(scope="module")
def tables() -> ModuleType:
    spec = importlib.util.spec_from_file_location("benchmark_tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind", ["sample", "continuous3", "money"])
def test_a_table_is_seeded_with_unique_ids_from_first_id(tables: ModuleType, kind: str) -> None:
    table = tables.make_table(kind, 2000, seed=3, first_id=101)
    assert table.equals(tables.make_table(kind, 2000, seed=3, first_id=101))
    assert not table.equals(tables.make_table(kind, 2000, seed=4, first_id=101))
    ids = table[tables.ID_COLUMNS[kind]]
    assert list(table.columns)[0] == tables.ID_COLUMNS[kind] and ids.is_unique
    numbers = ids.str[1:].astype(int) if kind == "money" else ids
    assert (numbers.min(), numbers.max()) == (101, 2100)


def test_continuous3_is_the_sample_jittered_so_that_no_row_repeats(tables: ModuleType) -> None:
    sample, continuous = (tables.make_table(kind, 5000, seed=3) for kind in ("sample", "continuous3"))
    features = tables.FEATURES
    pd.testing.assert_frame_equal(np.floor(continuous[features]), sample[features])
    assert not continuous[features].duplicated().any()
    assert sample[features].duplicated().mean() > 0.5


def test_money_is_skewed_correlated_and_partly_missing(tables: ModuleType) -> None:
    table = tables.make_table("money", 20_000, seed=3)
    assert table["CUST_ID"].str.fullmatch(r"C\d{7}").all()
    features = table[tables.MONEY_FEATURES]
    assert features.shape[1] == 17 and (features.dtypes == np.float64).all()
    missing = features.isna().mean()
    assert (missing > 0.005).sum() == 3 and missing.max() < 0.05
    frequencies = features.filter(like="FREQUENCY")
    assert frequencies.min().min() >= 0 and frequencies.max().max() <= 1
    assert (features["PURCHASES"].mean() > 2 * features["PURCHASES"].median())  # right-skewed money
    assert features["PURCHASES"].corr(features["PURCHASES_TRX"]) > 0.3  # one latent spender behind both


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_write_table_round_trips(tables: ModuleType, tmp_path: Path, suffix: str) -> None:
    table = tables.make_table("money", 500, seed=3)
    path = tables.write_table(table, tmp_path / f"money{suffix}")
    back = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    assert list(tmp_path.iterdir()) == [path]
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
