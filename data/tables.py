"""Synthetic customer tables unlike the sample, each with the challenges of a kind of real table.

The tests train and score on them; a user can write them to look at:

    python data/tables.py OUT_FOLDER

* ``mall``: 200 rows; ``CustomerID``, ``Gender``, ``Age``, ``Annual Income
  (k$)``, ``Spending Score (1-100)`` (column names with spaces and
  brackets), five groups in income × spending of unequal size.
* ``marketing``: 2,240 rows, ``;``-separated with a BOM; birth years instead
  of ages (three absurd ones), income with gaps and one absurd value,
  children split over two columns, spend split over six skewed columns,
  a ``dd-mm-yyyy`` date column, education and marital status as text.
* ``credit``: 8,950 rows; a text id (``C10001``), 17 skewed, zero-inflated,
  correlated continuous features (balances, purchases, frequencies in
  [0, 1], counts, tenure), some missing.
* ``blobs``: Gaussian blobs of known k, unequal sizes and spreads.

None of them is what the defaults were chosen on: they exist to check that
the defaults hold for tables of these kinds.
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def mall(seed: int = 0, n: int = 200) -> pd.DataFrame:
    """A mall customers table: five groups in income × spending score."""
    rng = np.random.default_rng(seed)
    # (income centre, income sd, spending centre, spending sd, share)
    groups = np.array([
        (26, 7, 20, 8, 0.115), (26, 7, 79, 9, 0.11), (55, 8, 50, 6, 0.405), (87, 13, 82, 8, 0.195), (88, 14, 17, 9, 0.175),
    ])
    size = np.floor(groups[:, 4] * n).astype(int)
    size[2] += n - size.sum()
    label = np.repeat(np.arange(5), size)
    income = np.clip(np.round(rng.normal(groups[label, 0], groups[label, 1])), 15, 137)
    spending = np.clip(np.round(rng.normal(groups[label, 2], groups[label, 3])), 1, 99)
    age = np.clip(np.round(np.where(spending[:] > 60, rng.normal(31, 6, n), rng.normal(44, 12, n))), 18, 70)
    order = rng.permutation(n)
    return pd.DataFrame({
        "CustomerID": np.arange(1, n + 1),
        "Gender": rng.choice(["Female", "Male"], n, p=[0.56, 0.44]),
        "Age": age[order].astype(int),
        "Annual Income (k$)": income[order].astype(int),
        "Spending Score (1-100)": spending[order].astype(int),
    })


def marketing(seed: int = 0, n: int = 2240) -> pd.DataFrame:
    """A marketing campaign table: birth years, spend over six columns, a date, text levels, absurd rows."""
    rng = np.random.default_rng(seed)
    wealth = rng.normal(0, 1, n)
    income = np.round(np.exp(10.8 + 0.45 * wealth + rng.normal(0, 0.15, n)))
    income[rng.choice(n, 24, replace=False)] = np.nan
    income[rng.integers(n)] = 666_666
    year = np.clip(np.round(rng.normal(1969, 12, n)), 1940, 1996)
    year[rng.choice(n, 3, replace=False)] = [1893, 1899, 1900]
    kids = rng.poisson(np.exp(-0.6 - 0.5 * wealth)).clip(0, 2)
    teens = rng.poisson(0.5, n).clip(0, 2)
    frame = pd.DataFrame({
        "ID": rng.choice(11_200, n, replace=False),
        "Year_Birth": year.astype(int),
        "Education": rng.choice(["Graduation", "PhD", "Master", "2n Cycle", "Basic"], n, p=[0.5, 0.22, 0.16, 0.09, 0.03]),
        "Marital_Status": rng.choice(["Married", "Together", "Single", "Divorced", "Widow"], n,
                                     p=[0.39, 0.26, 0.21, 0.1, 0.04]),
        "Income": income,
        "Kidhome": kids,
        "Teenhome": teens,
        "Dt_Customer": (pd.Timestamp("2012-07-30") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")).strftime("%d-%m-%Y"),
        "Recency": rng.integers(0, 100, n),
    })
    appetite = wealth - 0.6 * kids
    for name, scale in [("MntWines", 5.2), ("MntFruits", 2.6), ("MntMeatProducts", 4.5), ("MntFishProducts", 2.9),
                        ("MntSweetProducts", 2.6), ("MntGoldProds", 3.2)]:
        frame[name] = np.round(np.exp(scale + 1.1 * appetite + rng.normal(0, 0.8, n)) * (rng.random(n) > 0.08)).astype(int)
    frame["NumWebPurchases"] = rng.poisson(np.exp(1.3 + 0.4 * appetite)).astype(int)
    frame["NumStorePurchases"] = rng.poisson(np.exp(1.6 + 0.4 * appetite)).astype(int)
    return frame


CREDIT_FEATURES = [
    "BALANCE", "BALANCE_FREQUENCY", "PURCHASES", "ONEOFF_PURCHASES", "INSTALLMENTS_PURCHASES", "CASH_ADVANCE",
    "PURCHASES_FREQUENCY", "ONEOFF_PURCHASES_FREQUENCY", "PURCHASES_INSTALLMENTS_FREQUENCY", "CASH_ADVANCE_FREQUENCY",
    "CASH_ADVANCE_TRX", "PURCHASES_TRX", "CREDIT_LIMIT", "PAYMENTS", "MINIMUM_PAYMENTS", "PRC_FULL_PAYMENT", "TENURE",
]


def credit(seed: int = 0, n: int = 8950) -> pd.DataFrame:
    """A credit card table: a text id and 17 skewed, zero-inflated, correlated features, some missing."""
    rng = np.random.default_rng(seed)
    spender, borrower, wealth = rng.normal(size=(3, n))
    buys = rng.random(n) < 0.77 + 0.1 * np.tanh(spender)
    advances = rng.random(n) < 0.48 + 0.2 * np.tanh(borrower)
    oneoff_share = rng.beta(2, 2, n)
    purchases = np.where(buys, np.exp(6.3 + 1.2 * spender + 0.4 * wealth + rng.normal(0, 0.6, n)), 0.0)
    cash = np.where(advances, np.exp(6.8 + 1.1 * borrower + rng.normal(0, 0.7, n)), 0.0)
    limit = np.round(np.exp(8.2 + 0.6 * wealth + rng.normal(0, 0.3, n)), -2)
    balance = np.exp(6.5 + 0.7 * borrower + 0.5 * wealth + rng.normal(0, 0.9, n)) * (rng.random(n) > 0.03)
    frequency = lambda centre: np.clip(rng.beta(1.2, 1.2, n) * 0.6 + 0.4 * (1 / (1 + np.exp(-centre))), 0, 1)  # noqa: E731
    purchases_frequency = np.where(buys, frequency(spender), 0.0)
    payments = np.exp(6.9 + 0.5 * wealth + 0.4 * spender + rng.normal(0, 0.8, n))
    frame = pd.DataFrame({
        "CUST_ID": [f"C{10001 + i}" for i in range(n)],
        "BALANCE": balance.round(6),
        "BALANCE_FREQUENCY": np.clip(1 - rng.exponential(0.1, n), 0, 1).round(6),
        "PURCHASES": purchases.round(2),
        "ONEOFF_PURCHASES": (purchases * oneoff_share * (rng.random(n) > 0.3)).round(2),
        "INSTALLMENTS_PURCHASES": (purchases * (1 - oneoff_share) * (rng.random(n) > 0.2)).round(2),
        "CASH_ADVANCE": cash.round(6),
        "PURCHASES_FREQUENCY": purchases_frequency.round(6),
        "ONEOFF_PURCHASES_FREQUENCY": (purchases_frequency * oneoff_share).round(6),
        "PURCHASES_INSTALLMENTS_FREQUENCY": (purchases_frequency * (1 - oneoff_share)).round(6),
        "CASH_ADVANCE_FREQUENCY": np.where(advances, frequency(borrower) * 0.5, 0.0).round(6),
        "CASH_ADVANCE_TRX": np.where(advances, rng.poisson(np.exp(1.0 + 0.7 * borrower)), 0),
        "PURCHASES_TRX": np.where(buys, rng.poisson(np.exp(2.3 + 0.8 * spender)), 0),
        "CREDIT_LIMIT": limit,
        "PAYMENTS": payments.round(6),
        "MINIMUM_PAYMENTS": np.exp(5.8 + 0.6 * borrower + rng.normal(0, 0.9, n)).round(6),
        "PRC_FULL_PAYMENT": np.where(rng.random(n) < 0.55, 0.0, rng.beta(0.6, 0.6, n)).round(6),
        "TENURE": rng.choice([6, 7, 8, 9, 10, 11, 12], n, p=[0.02, 0.02, 0.02, 0.02, 0.03, 0.04, 0.85]),
    })
    frame.loc[rng.choice(n, 313, replace=False), "MINIMUM_PAYMENTS"] = np.nan
    frame.loc[rng.integers(n), "CREDIT_LIMIT"] = np.nan
    return frame


def blobs(k: int, n_features: int, seed: int = 0, n: int = 4000, separation: float = 6.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Gaussian blobs of known ``k``: unequal sizes (Dirichlet shares, at least 4 %) and spreads (sd 0.6 to 1.6).

    Centres are drawn until every pair is at least ``separation`` times the
    larger of their two spreads apart, so the k groups are truly separate.

    Returns
    -------
    frame : DataFrame
        ``id`` and ``x0``, ``x1``, ... .
    truth : ndarray of int
        Each row's blob.
    """
    rng = np.random.default_rng(seed)
    spread = rng.uniform(0.6, 1.6, k)
    centres = np.empty((k, n_features))
    for i in range(k):
        for _ in range(10_000):
            candidate = rng.uniform(-1, 1, n_features) * separation * np.sqrt(k) * 1.2
            if all(np.linalg.norm(candidate - centres[j]) >= separation * max(spread[i], spread[j]) for j in range(i)):
                break
        else:
            raise RuntimeError("could not place the blobs apart; lower the separation")
        centres[i] = candidate
    shares = np.maximum(rng.dirichlet(np.full(k, 2.0)), 0.04)
    size = np.floor(shares / shares.sum() * n).astype(int)
    size[0] += n - size.sum()
    truth = np.repeat(np.arange(k), size)
    X = centres[truth] + rng.normal(size=(n, n_features)) * spread[truth, None]
    order = rng.permutation(n)
    frame = pd.DataFrame(X[order], columns=[f"x{j}" for j in range(n_features)])
    frame.insert(0, "id", np.arange(n))
    return frame, truth[order]


def write_all(folder: Path, seed: int = 0) -> list[Path]:
    """Write ``mall.csv``, ``marketing.csv`` (``;`` and a BOM) and ``credit.csv`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    mall(seed).to_csv(folder / "mall.csv", index=False)
    (folder / "marketing.csv").write_text("\ufeff" + marketing(seed).to_csv(index=False, sep=";"), encoding="utf-8")
    credit(seed).to_csv(folder / "credit.csv", index=False)
    return [folder / name for name in ("mall.csv", "marketing.csv", "credit.csv")]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the tables into")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    for path in write_all(arguments.out, arguments.seed):
        print(path)
