#!/usr/bin/env python3
"""Seeded synthetic customer tables at any row count, for the benchmarks.

Three kinds, each a pandas DataFrame with an ID column first:

* ``sample``: integer demographics like the reference sample (``ID`` plus
  Age, Work_Experience, Family_Size from four life-stage profiles, 10.3 % /
  4.2 % of Work_Experience / Family_Size missing): few distinct rows.
* ``continuous3``: the same three features with uniform jitter in [0, 1)
  added, so every row is distinct while the floor of each value is still
  the sample-like integer (the ranges of ``benchmarks/batch.yaml`` hold).
* ``money``: a credit-card-like table: a text ``CUST_ID`` (``C0000001``)
  and 17 correlated, skewed, zero-inflated features (balances, purchases,
  cash advances, payments, credit limit, frequencies in [0, 1], counts,
  tenure) driven by three latent factors (spender, borrower, wealth), with
  a few percent missing in three columns.

Every generator is vectorised (numpy, no per-row Python) and a function of
``(rows, seed)`` alone, so a table can be rebuilt rather than stored::

    python benchmarks/tables.py --kind money --rows 10000000 --out /tmp/money.parquet

API: :func:`make_table` and :func:`write_table`; :func:`sample_features` is
the three-feature sample-like table without an ID, as the SOM engine
benchmark uses it.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

KINDS: tuple[str, ...] = ("sample", "continuous3", "money")
FEATURES: list[str] = ["Age", "Work_Experience", "Family_Size"]
MONEY_FEATURES: list[str] = [
    "BALANCE", "BALANCE_FREQUENCY", "PURCHASES", "ONEOFF_PURCHASES", "INSTALLMENTS_PURCHASES", "CASH_ADVANCE",
    "PURCHASES_FREQUENCY", "ONEOFF_PURCHASES_FREQUENCY", "PURCHASES_INSTALLMENTS_FREQUENCY", "CASH_ADVANCE_FREQUENCY",
    "CASH_ADVANCE_TRX", "PURCHASES_TRX", "CREDIT_LIMIT", "PAYMENTS", "MINIMUM_PAYMENTS", "PRC_FULL_PAYMENT", "TENURE",
]
ID_COLUMNS = {"sample": "ID", "continuous3": "ID", "money": "CUST_ID"}
ROW_GROUP_ROWS = 1_000_000

# Hand-set approximations of the reference sample (the same model as
# data/make_sample.py, reduced to the three SOM features): life-stage shares,
# then per-profile pmfs of Work_Experience (0-14) and Family_Size (1-9).
PROFILE_SHARES = np.array([0.390, 0.180, 0.210, 0.220])  # early, senior, established, family
_LOW_EXP = [0.400, 0.400, 0.060, 0.055, 0.050, 0.018, 0.012, 0.005] + [0.0] * 7
WORK_EXP_PMF = np.array([
    _LOW_EXP,
    [0.450, 0.460, 0.040, 0.030, 0.020] + [0.0] * 10,
    [0.0] * 4 + [0.020, 0.080, 0.090, 0.090, 0.280, 0.280] + [0.032] * 5,
    _LOW_EXP,
])
FAMILY_SIZE_PMF = np.array([
    [0.220, 0.380, 0.340, 0.060, 0.000, 0.000, 0.000, 0.000, 0.000],
    [0.300, 0.520, 0.120, 0.050, 0.010, 0.000, 0.000, 0.000, 0.000],
    [0.220, 0.320, 0.180, 0.150, 0.070, 0.030, 0.015, 0.008, 0.007],
    [0.000, 0.000, 0.020, 0.480, 0.270, 0.120, 0.050, 0.030, 0.030],
])
MISSING_RATES = {"Work_Experience": 0.103, "Family_Size": 0.042}
MONEY_MISSING_RATES = {"MINIMUM_PAYMENTS": 0.035, "CREDIT_LIMIT": 0.01, "BALANCE_FREQUENCY": 0.02}


# --- the public API ---------------------------------------------------------------


def make_table(kind: str, rows: int, seed: int, first_id: int = 1) -> pd.DataFrame:
    """One seeded table of ``kind`` with ``rows`` rows, its ID column first.

    Parameters
    ----------
    kind : {"sample", "continuous3", "money"}
    rows : int
    seed : int
        The same ``(kind, rows, seed, first_id)`` gives the same table.
    first_id : int, default 1
        The smallest ID; tables of new customers take IDs after the training
        table's (``first_id=rows + 1``) so that no ID repeats between them.

    Returns
    -------
    DataFrame
        ``ID`` (int64, unique, shuffled) and :data:`FEATURES` (float64, NaN
        where missing) for ``sample`` and ``continuous3``; ``CUST_ID`` (text,
        ``C`` and seven or more digits) and :data:`MONEY_FEATURES` for
        ``money``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "money":
        frame = money_features(rows, seed)
        ids = np.random.default_rng([seed, 1]).permutation(rows).astype(np.int64) + first_id
        frame.insert(0, ID_COLUMNS[kind], _text_ids(ids))
        return frame
    frame = sample_features(rows, seed)
    if kind == "continuous3":
        jitter = np.random.default_rng([seed, 2]).random((rows, len(FEATURES)))
        frame = frame + jitter  # NaN stays NaN; floor(value) is still the integer drawn
    ids = np.random.default_rng([seed, 1]).permutation(rows).astype(np.int64) + first_id
    frame.insert(0, ID_COLUMNS[kind], ids)
    return frame


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` as Parquet (row groups of 1 M rows) or CSV, by the suffix of ``path``.

    Written under a temporary name and renamed, so a reader never sees half
    a table.
    """
    path = Path(path)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if path.suffix == ".parquet":
        pq.write_table(table, temporary, row_group_size=ROW_GROUP_ROWS)
    elif path.suffix == ".csv":
        pacsv.write_csv(table, temporary)
    else:
        raise ValueError(f"write .parquet or .csv, not {path.suffix!r}")
    os.replace(temporary, path)
    return path


# --- the generators -----------------------------------------------------------------


def sample_features(rows: int, seed: int) -> pd.DataFrame:
    """Seeded synthetic Age / Work_Experience / Family_Size table like the sample (NaN where missing).

    Parameters
    ----------
    rows : int
    seed : int

    Returns
    -------
    DataFrame with float64 columns :data:`FEATURES`, integer-valued.
    """
    rng = np.random.default_rng(seed)
    profile = rng.choice(len(PROFILE_SHARES), size=rows, p=PROFILE_SHARES).astype(np.int8)
    work_exp = _by_profile(rng, profile, WORK_EXP_PMF, offset=0)
    family = _by_profile(rng, profile, FAMILY_SIZE_PMF, offset=1)
    age = _ages(rng, profile, work_exp)
    frame = pd.DataFrame({"Age": age, "Work_Experience": work_exp, "Family_Size": family})
    for column, rate in MISSING_RATES.items():
        frame.loc[rng.random(rows) < rate, column] = np.nan
    return frame


def _by_profile(rng: np.random.Generator, profile: np.ndarray, pmf: np.ndarray, offset: int) -> np.ndarray:
    values = np.empty(len(profile))
    for p in range(len(pmf)):  # four profiles, each drawn in one vectorised call
        where = profile == p
        values[where] = rng.choice(pmf.shape[1], size=int(where.sum()), p=pmf[p]) + offset
    return values


def _ages(rng: np.random.Generator, profile: np.ndarray, work_exp: np.ndarray) -> np.ndarray:
    n = len(profile)
    age = np.where(profile == 2, rng.normal(40.0, 12.0, n), rng.normal(37.0, 10.5, n))
    young = (profile == 3) & (rng.random(n) < 0.25)
    age = np.where(profile == 3, np.where(young, rng.uniform(18, 27, n), rng.normal(40.0, 11.0, n)), age)
    old_tail = rng.random(n) < 0.22
    senior = np.where(old_tail, rng.uniform(75, 90, n), rng.normal(67.0, 7.0, n))
    senior = np.where(senior < 55, 110 - senior, senior)  # seniors stay out of working age
    age = np.where(profile == 1, senior, age)
    age = np.clip(np.floor(age), 18, 89)
    # Nobody starts work before ~15: lift ages that contradict the experience.
    return np.maximum(age, work_exp + 15 + rng.integers(0, 6, n)).clip(18, 89)


def money_features(rows: int, seed: int) -> pd.DataFrame:
    """Seeded credit-card-like table: 17 correlated, skewed, zero-inflated features, some missing.

    Three latent factors (spender, borrower, wealth) drive log-normal amounts,
    so the amounts correlate as a customer's do; frequencies are in [0, 1],
    counts and tenure integer-valued.

    Parameters
    ----------
    rows : int
    seed : int

    Returns
    -------
    DataFrame with float64 columns :data:`MONEY_FEATURES`, NaN where missing.
    """
    rng = np.random.default_rng(seed)
    n = rows
    spender, borrower, wealth = rng.standard_normal((3, n))
    buys = rng.random(n) < 0.77 + 0.1 * np.tanh(spender)
    advances = rng.random(n) < 0.48 + 0.2 * np.tanh(borrower)
    oneoff_share = rng.beta(2, 2, n)

    def lognormal(centre: float, noise: float, *terms: np.ndarray) -> np.ndarray:
        return np.exp(centre + sum(terms) + noise * rng.standard_normal(n))

    purchases = np.where(buys, lognormal(6.3, 0.6, 1.2 * spender, 0.4 * wealth), 0.0)
    cash = np.where(advances, lognormal(6.8, 0.7, 1.1 * borrower), 0.0)
    limit = np.round(lognormal(8.2, 0.3, 0.6 * wealth), -2)
    balance = lognormal(6.5, 0.9, 0.7 * borrower, 0.5 * wealth) * (rng.random(n) > 0.03)
    payments = lognormal(6.9, 0.8, 0.5 * wealth, 0.4 * spender)
    minimum_payments = lognormal(5.8, 0.9, 0.6 * borrower)

    def frequency(centre: np.ndarray) -> np.ndarray:
        return np.clip(rng.beta(1.2, 1.2, n) * 0.6 + 0.4 / (1 + np.exp(-centre)), 0, 1)

    purchases_frequency = np.where(buys, frequency(spender), 0.0)
    frame = pd.DataFrame({
        "BALANCE": balance,
        "BALANCE_FREQUENCY": np.clip(1 - rng.exponential(0.1, n), 0, 1),
        "PURCHASES": purchases.round(2),
        "ONEOFF_PURCHASES": (purchases * oneoff_share * (rng.random(n) > 0.3)).round(2),
        "INSTALLMENTS_PURCHASES": (purchases * (1 - oneoff_share) * (rng.random(n) > 0.2)).round(2),
        "CASH_ADVANCE": cash,
        "PURCHASES_FREQUENCY": purchases_frequency,
        "ONEOFF_PURCHASES_FREQUENCY": purchases_frequency * oneoff_share,
        "PURCHASES_INSTALLMENTS_FREQUENCY": purchases_frequency * (1 - oneoff_share),
        "CASH_ADVANCE_FREQUENCY": np.where(advances, frequency(borrower) * 0.5, 0.0),
        "CASH_ADVANCE_TRX": np.where(advances, rng.poisson(np.exp(1.0 + 0.7 * borrower)), 0).astype(np.float64),
        "PURCHASES_TRX": np.where(buys, rng.poisson(np.exp(2.3 + 0.8 * spender)), 0).astype(np.float64),
        "CREDIT_LIMIT": limit,
        "PAYMENTS": payments,
        "MINIMUM_PAYMENTS": minimum_payments,
        "PRC_FULL_PAYMENT": np.where(rng.random(n) < 0.55, 0.0, rng.beta(0.6, 0.6, n)),
        "TENURE": rng.choice(np.arange(6, 13), n, p=[0.02, 0.02, 0.02, 0.02, 0.03, 0.04, 0.85]).astype(np.float64),
    })
    for column, rate in MONEY_MISSING_RATES.items():
        frame.loc[rng.random(n) < rate, column] = np.nan
    return frame


def _text_ids(ids: np.ndarray) -> pd.Series:
    """``C`` and the ID zero-padded to seven digits, built in Arrow rather than per row in Python."""
    digits = pc.utf8_lpad(pc.cast(pa.array(ids), pa.string()), width=7, padding="0")
    text = pc.binary_join_element_wise(pa.scalar("C"), digits, "")
    return pd.Series(pd.arrays.ArrowStringArray(text), name=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=KINDS, default="money")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--first-id", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True, help="a .parquet or .csv path")
    args = parser.parse_args()
    start = time.perf_counter()
    frame = make_table(args.kind, args.rows, args.seed, args.first_id)
    made = time.perf_counter()
    write_table(frame, args.out)
    print(f"{args.kind}: {args.rows:,} rows made in {made - start:.1f} s, written in "
          f"{time.perf_counter() - made:.1f} s -> {args.out} ({args.out.stat().st_size / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
