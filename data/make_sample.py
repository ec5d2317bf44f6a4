#!/usr/bin/env python3
"""Generate the synthetic customer sample shipped with somseg.

The project must not redistribute the reference table (the public
"customer segmentation" hackathon ``train.csv``), yet the first-run demo needs
data with the same schema and a similar structure. This script draws such a
table from a hand-written generative model. It never reads the reference
table: its parameters are rounded, hand-set approximations of the reference's
marginals and cross-tabulations, so no row or ID is copied.

Model, in sampling order:

1. A latent life-stage profile per customer, matching the four macro-segments
   that the reference SOM analysis finds (early career, senior, established
   professional, family-oriented), in roughly the same proportions. The
   profile drives Age, Work_Experience and Family_Size and is *not* written
   out.
2. Demographics conditional on the profile and on age: marital status
   (logistic in age, adjusted by household size), profession (by age band),
   gender (by profession), education (by age and profession), spending score
   (only married customers spend "Average"/"High", as in the reference) and
   the anonymous ``Var_1`` category (by education).
3. The ``Segmentation`` letter (A-D) from a multinomial logit over those
   demographics, with intercepts calibrated to the reference frequencies.
4. Missing cells, completely at random, at the reference rates.

Usage::

    python data/make_sample.py                      # 5,000 rows, default seed
    python data/make_sample.py --rows 1000 --seed 7 --out /tmp/sample.csv

Only numpy and pandas are used; the project package is not imported so the
script runs on a bare checkout.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_ROWS: int = 5_000
DEFAULT_SEED: int = 20261129
DEFAULT_OUT: Path = Path(__file__).resolve().parent / "customers_sample.csv"

# Reference IDs lie in 458982-467974; starting far above keeps the two tables
# distinguishable, so a sample row can never be mistaken for a real customer.
ID_START: int = 900_001

COLUMNS: list[str] = [
    "ID", "Gender", "Ever_Married", "Age", "Graduated", "Profession",
    "Work_Experience", "Spending_Score", "Family_Size", "Var_1", "Segmentation",
]

AGE_MIN: int = 18
AGE_MAX: int = 89

# Latent profiles and their shares. The reference SOM finds 36 / 22 / 21 / 21 %
# (2,940 / 1,743 / 1,665 / 1,720 of 8,068). The shares below sit slightly off
# that on purpose: the SOM's data-driven boundaries also count older
# working-age customers as seniors, and with these inputs the reference recipe
# recovers about 35 / 22 / 20 / 23 % on the default sample.
PROFILES: list[str] = ["early_career", "senior", "established", "family"]
PROFILE_SHARES: np.ndarray = np.array([0.390, 0.180, 0.210, 0.220])
EARLY, SENIOR, ESTABLISHED, FAMILY = range(4)

# Work_Experience pmfs (years 0..14). Most customers report 0 or 1 year; the
# established profile carries the 8-9 year bulge and the 10-14 tail.
_LOW_EXP: list[float] = [0.400, 0.400, 0.060, 0.055, 0.050, 0.018, 0.012, 0.005] + [0.0] * 7
_SENIOR_EXP: list[float] = [0.450, 0.460, 0.040, 0.030, 0.020] + [0.0] * 10
_ESTABLISHED_EXP: list[float] = (
    [0.0] * 4 + [0.020, 0.080, 0.090, 0.090, 0.280, 0.280] + [0.032] * 5
)
WORK_EXP_PMF: np.ndarray = np.array([_LOW_EXP, _SENIOR_EXP, _ESTABLISHED_EXP, _LOW_EXP])

# Family_Size pmfs (sizes 1..9): couples and small households dominate, the
# family-oriented profile holds almost all households of 4 and more.
FAMILY_SIZE_PMF: np.ndarray = np.array([
    [0.220, 0.380, 0.340, 0.060, 0.000, 0.000, 0.000, 0.000, 0.000],  # early
    [0.300, 0.520, 0.120, 0.050, 0.010, 0.000, 0.000, 0.000, 0.000],  # senior
    [0.220, 0.320, 0.180, 0.150, 0.070, 0.030, 0.015, 0.008, 0.007],  # established
    [0.000, 0.000, 0.020, 0.480, 0.270, 0.120, 0.050, 0.030, 0.030],  # family
])

PROFESSIONS: list[str] = [
    "Artist", "Doctor", "Engineer", "Entertainment", "Executive",
    "Healthcare", "Homemaker", "Lawyer", "Marketing",
]
# Profession by age band: young customers work in healthcare, mid-life ones
# are mostly artists, and the oldest are overwhelmingly (retired) lawyers.
AGE_BAND_EDGES: np.ndarray = np.array([26, 36, 46, 56, 66, 76])  # 7 bands
PROFESSION_BY_AGE: np.ndarray = np.array([
    # Art   Doc   Eng   Ent   Exe   Hea   Hom   Law   Mkt
    [0.05, 0.09, 0.04, 0.06, 0.02, 0.65, 0.02, 0.00, 0.07],  # 18-25
    [0.20, 0.14, 0.10, 0.12, 0.04, 0.29, 0.06, 0.00, 0.05],  # 26-35
    [0.44, 0.09, 0.12, 0.15, 0.08, 0.05, 0.03, 0.00, 0.04],  # 36-45
    [0.50, 0.07, 0.10, 0.14, 0.11, 0.02, 0.03, 0.01, 0.02],  # 46-55
    [0.47, 0.05, 0.09, 0.15, 0.12, 0.02, 0.02, 0.06, 0.02],  # 56-65
    [0.25, 0.04, 0.06, 0.08, 0.14, 0.01, 0.01, 0.39, 0.02],  # 66-75
    [0.08, 0.01, 0.01, 0.03, 0.10, 0.00, 0.01, 0.75, 0.01],  # 76+
])
PROFESSION_BY_AGE = PROFESSION_BY_AGE / PROFESSION_BY_AGE.sum(axis=1, keepdims=True)

# P(Male | profession): executives and entertainers are mostly men, engineers
# and homemakers mostly women in the reference population.
MALE_SHARE_BY_PROFESSION: np.ndarray = np.array(
    [0.52, 0.56, 0.20, 0.73, 0.95, 0.58, 0.17, 0.51, 0.44]
)
# Log-odds shift of graduating, by profession (artists are nearly all
# graduates; healthcare and marketing staff less often).
GRAD_SHIFT_BY_PROFESSION: np.ndarray = np.array(
    [1.4, -0.2, -0.9, -0.1, -0.5, -0.2, -0.3, 0.2, -0.9]
)

SPENDING_LEVELS: list[str] = ["Low", "Average", "High"]
# Spending_Score pmf (Low, Average, High) of *married* customers by profession.
SPENDING_IF_MARRIED: np.ndarray = np.array([
    [0.30, 0.58, 0.12],  # Artist
    [0.42, 0.46, 0.12],  # Doctor
    [0.34, 0.52, 0.14],  # Engineer
    [0.33, 0.56, 0.11],  # Entertainment
    [0.10, 0.14, 0.76],  # Executive
    [0.55, 0.25, 0.20],  # Healthcare
    [0.38, 0.45, 0.17],  # Homemaker
    [0.43, 0.03, 0.54],  # Lawyer
    [0.55, 0.15, 0.30],  # Marketing
])

VAR1_CATS: list[str] = ["Cat_1", "Cat_2", "Cat_3", "Cat_4", "Cat_5", "Cat_6", "Cat_7"]
# Var_1 is an anonymised category; its only visible structure in the
# reference is that Cat_4 leans non-graduate and Cat_6 graduate.
VAR1_PMF_NOT_GRAD: np.ndarray = np.array([0.019, 0.050, 0.120, 0.225, 0.014, 0.540, 0.032])
VAR1_PMF_GRAD: np.ndarray = np.array([0.015, 0.054, 0.092, 0.081, 0.009, 0.727, 0.022])

SEGMENTS: list[str] = ["A", "B", "C", "D"]
SEGMENT_TARGET: np.ndarray = np.array([0.244, 0.230, 0.244, 0.282])

# Share of missing cells per column, as in the reference table.
MISSING_RATES: dict[str, float] = {
    "Work_Experience": 0.103,
    "Family_Size": 0.042,
    "Ever_Married": 0.017,
    "Profession": 0.015,
    "Graduated": 0.010,
    "Var_1": 0.009,
}


def sample_categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """Draw one category index per row of ``probs`` (an n x k matrix).

    Inverse-CDF sampling on a row-wise cumulative sum keeps this vectorised
    even when every row has its own distribution.
    """
    cum = np.cumsum(probs, axis=1)
    cum /= cum[:, -1:]  # guard against rounding so every row ends at 1
    u = rng.random(len(probs))[:, None]
    return (u >= cum).sum(axis=1)  # index = number of cum <= u


def sample_profiles(rng: np.random.Generator, n: int) -> np.ndarray:
    """Latent life-stage profile index (0-3) per customer."""
    return rng.choice(len(PROFILES), size=n, p=PROFILE_SHARES)


def sample_work_experience(rng: np.random.Generator, profile: np.ndarray) -> np.ndarray:
    """Years of work experience (0-14) from the profile's pmf."""
    return sample_categorical(rng, WORK_EXP_PMF[profile]).astype(float)


def sample_family_size(rng: np.random.Generator, profile: np.ndarray) -> np.ndarray:
    """Household size (1-9) from the profile's pmf."""
    return (sample_categorical(rng, FAMILY_SIZE_PMF[profile]) + 1).astype(float)


def sample_age(
    rng: np.random.Generator, profile: np.ndarray, work_exp: np.ndarray
) -> np.ndarray:
    """Integer age per customer, shaped by profile.

    Working-age profiles are normal around the late thirties; the family
    profile mixes in young adults still living in a large parental household
    (why the reference's 18-25 band has the largest families). Seniors are a
    55-80 bulk plus a flat 75-89 tail, reproducing the reference's long,
    non-vanishing old-age tail.
    """
    n = len(profile)
    age = np.empty(n)

    early = profile == EARLY
    age[early] = rng.normal(37.0, 10.5, early.sum())

    estab = profile == ESTABLISHED
    age[estab] = rng.normal(40.0, 12.0, estab.sum())

    family = profile == FAMILY
    young_adult = rng.random(n) < 0.25
    age[family & young_adult] = rng.uniform(18, 27, (family & young_adult).sum())
    age[family & ~young_adult] = rng.normal(40.0, 11.0, (family & ~young_adult).sum())

    senior = profile == SENIOR
    old_tail = rng.random(n) < 0.22
    age[senior & ~old_tail] = rng.normal(67.0, 7.0, (senior & ~old_tail).sum())
    age[senior & old_tail] = rng.uniform(75, 90, (senior & old_tail).sum())
    # Seniors never fall into the working-age bulk; reflect stragglers upward.
    age[senior] = np.where(age[senior] < 55, 110 - age[senior], age[senior])

    age = np.clip(np.floor(age), AGE_MIN, AGE_MAX)
    # Nobody starts a career before ~15, so lift ages that would contradict
    # the drawn work experience (a small random offset avoids a pile-up).
    floor_age = work_exp + 15 + rng.integers(0, 6, n)
    return np.maximum(age, floor_age).clip(AGE_MIN, AGE_MAX).astype(int)


def sample_married(
    rng: np.random.Generator, age: np.ndarray, family_size: np.ndarray
) -> np.ndarray:
    """Ever_Married as bool: strongly rising with age, household-dependent.

    Two-person households are typically couples; single-person households
    and very large (parental) households are less often married.
    """
    logit = (age - 36.0) / 6.0
    logit += np.select(
        [family_size == 1, family_size == 2, family_size >= 6],
        [-1.6, 1.3, -0.6],
        0.0,
    )
    # Capped below 1: some people never marry, even in old age.
    return rng.random(len(age)) < 0.96 / (1.0 + np.exp(-logit))


def sample_profession(
    rng: np.random.Generator, age: np.ndarray, profile: np.ndarray
) -> np.ndarray:
    """Profession index by age band; homemakers skew to long work histories."""
    band = np.searchsorted(AGE_BAND_EDGES, age, side="right")
    probs = PROFESSION_BY_AGE[band].copy()
    # The reference's homemakers report unusually long work experience.
    probs[profile == ESTABLISHED, PROFESSIONS.index("Homemaker")] *= 2.0
    return sample_categorical(rng, probs)


def sample_gender(rng: np.random.Generator, profession: np.ndarray) -> np.ndarray:
    """Gender label conditional on profession."""
    male = rng.random(len(profession)) < MALE_SHARE_BY_PROFESSION[profession]
    return np.where(male, "Male", "Female")


def sample_graduated(
    rng: np.random.Generator, age: np.ndarray, profession: np.ndarray
) -> np.ndarray:
    """Graduated as bool: rare before 23, common mid-life, dipping in old age."""
    logit = np.select(
        [age < 23, age < 30, age < 60],
        [-2.3, -0.2, 1.0],
        0.4,
    ) + GRAD_SHIFT_BY_PROFESSION[profession]
    return rng.random(len(age)) < 1.0 / (1.0 + np.exp(-logit))


def sample_spending(
    rng: np.random.Generator, married: np.ndarray, profession: np.ndarray
) -> np.ndarray:
    """Spending_Score; the never-married are always "Low", as in the reference.

    Among married customers the split depends on profession: executives and
    lawyers mostly spend "High", healthcare and marketing staff rarely spend.
    """
    probs = SPENDING_IF_MARRIED[profession]
    probs = np.where(married[:, None], probs, [1.0, 0.0, 0.0])
    return np.array(SPENDING_LEVELS)[sample_categorical(rng, probs)]


def sample_var1(rng: np.random.Generator, graduated: np.ndarray) -> np.ndarray:
    """Anonymous Var_1 category, conditional on education."""
    probs = np.where(graduated[:, None], VAR1_PMF_GRAD, VAR1_PMF_NOT_GRAD)
    return np.array(VAR1_CATS)[sample_categorical(rng, probs)]


def segmentation_scores(
    age: np.ndarray,
    married: np.ndarray,
    graduated: np.ndarray,
    profession: np.ndarray,
    spending: np.ndarray,
) -> np.ndarray:
    """Unnormalised log-odds (n x 4) of the A/B/C/D letters, A as baseline.

    D collects young, single, low-spending, non-graduate customers (notably
    healthcare and marketing staff); C and B are older, married, spending
    customers with C favouring artists and "Average" spenders.
    """
    n = len(age)
    years = (age - 43.0) / 15.0  # roughly standardised age
    prof = np.array(PROFESSIONS)[profession]
    low = spending == "Low"
    scores = np.zeros((n, 4))
    scores[:, 1] = 0.6 * ~low + 0.3 * married + 0.25 * years + 0.3 * (prof == "Artist")
    scores[:, 2] = (
        1.0 * (spending == "Average") + 0.5 * married + 0.3 * years
        + 0.9 * (prof == "Artist") + 0.4 * graduated
    )
    scores[:, 3] = (
        0.5 * low - 0.6 * married - 0.4 * years - 0.5 * graduated
        + 1.8 * np.isin(prof, ["Healthcare", "Marketing"]) - 1.2 * (prof == "Artist")
    )
    return scores


def sample_segmentation(rng: np.random.Generator, scores: np.ndarray) -> np.ndarray:
    """Draw A-D letters after calibrating intercepts to the target shares.

    A few fixed-point steps on the expected shares make the frequencies hold
    whatever --rows is, without consuming random numbers.
    """
    intercept = np.zeros(4)
    for _ in range(50):
        logits = scores + intercept
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        intercept += np.log(SEGMENT_TARGET / probs.mean(axis=0))
    return np.array(SEGMENTS)[sample_categorical(rng, probs)]


def sample_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unique integer IDs outside the reference range, in shuffled order."""
    return rng.permutation(np.arange(ID_START, ID_START + n))


def yes_no(flag: np.ndarray) -> np.ndarray:
    """Map booleans to the reference's "Yes"/"No" labels."""
    return np.where(flag, "Yes", "No")


def apply_missing(rng: np.random.Generator, df: pd.DataFrame) -> pd.DataFrame:
    """Blank out a fixed share of cells per column, completely at random.

    An exact count per column (rather than independent coin flips) keeps the
    missing shares on target even for small --rows.
    """
    n = len(df)
    for column, rate in MISSING_RATES.items():
        rows = rng.choice(n, size=round(rate * n), replace=False)
        df.loc[rows, column] = np.nan
    return df


def generate(n_rows: int, seed: int) -> pd.DataFrame:
    """Build the full synthetic customer table (before writing)."""
    rng = np.random.default_rng(seed)
    profile = sample_profiles(rng, n_rows)
    work_exp = sample_work_experience(rng, profile)
    family_size = sample_family_size(rng, profile)
    age = sample_age(rng, profile, work_exp)
    married = sample_married(rng, age, family_size)
    profession = sample_profession(rng, age, profile)
    gender = sample_gender(rng, profession)
    graduated = sample_graduated(rng, age, profession)
    spending = sample_spending(rng, married, profession)
    var1 = sample_var1(rng, graduated)
    segment = sample_segmentation(
        rng, segmentation_scores(age, married, graduated, profession, spending)
    )

    df = pd.DataFrame({
        "ID": sample_ids(rng, n_rows),
        "Gender": gender,
        "Ever_Married": yes_no(married),
        "Age": age,
        "Graduated": yes_no(graduated),
        "Profession": np.array(PROFESSIONS)[profession],
        "Work_Experience": work_exp,
        "Spending_Score": spending,
        "Family_Size": family_size,
        "Var_1": var1,
        "Segmentation": segment,
    }, columns=COLUMNS)
    # Strings as plain object columns so NaN can be inserted uniformly.
    text_cols = [c for c in COLUMNS if c not in ("ID", "Age", "Work_Experience", "Family_Size")]
    df[text_cols] = df[text_cols].astype(object)
    return apply_missing(rng, df)


def write_csv(df: pd.DataFrame, out: Path) -> None:
    """Write in the reference's format: floats as ``1.0``, empty for missing.

    CRLF line endings match the reference file (and RFC 4180).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False, na_rep="", lineterminator="\r\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, default=DEFAULT_ROWS,
        help="number of customers (default %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED,
        help="random seed (default %(default)s)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT,
        help="output CSV path (default: data/customers_sample.csv)",
    )
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    """Generate the sample and write it to ``--out``."""
    args = parse_args(argv)
    df = generate(args.rows, args.seed)
    write_csv(df, args.out)
    print(f"wrote {len(df):,} rows to {args.out}")


if __name__ == "__main__":
    main()
