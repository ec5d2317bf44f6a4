"""somseg.labels: naming segments from their profiles by declarative rules."""

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from somseg.config import Condition, LabelRule, load_config
from somseg.labels import TYPICAL, UNPOPULATED, SegmentLabeller

FEATURES = ["Age", "Work_Experience", "Family_Size"]

# The reference notebook's four profiles (observed-value means) and sizes.
REFERENCE = {
    "Early Career Adults": (2940, 36.78, 1.09, 2.24),
    "Senior / Retired": (1743, 67.47, 0.82, 1.94),
    "Established Professionals": (1665, 38.24, 8.26, 2.70),
    "Family-Oriented": (1720, 35.64, 0.88, 4.86),
}


def _profiles(rows: list[tuple[int, float, float, float]], numbering: list[int] | None = None) -> pd.DataFrame:
    numbering = list(range(len(rows))) if numbering is None else numbering
    frame = pd.DataFrame(rows, columns=["size", *(f"{f}_mean" for f in FEATURES)])
    frame.insert(0, "segment", numbering)
    return frame


def _population(means=(43.6, 2.4, 2.84), sds=(16.7, 3.4, 1.53)) -> pd.DataFrame:
    return pd.DataFrame({"mean": list(means), "sd": list(sds)}, index=FEATURES)


def _default_labeller() -> SegmentLabeller:
    labels = load_config(Path(__file__).resolve().parents[2] / "configs" / "reference.yaml").labels
    return SegmentLabeller(labels.rules, labels.fallback_min_z)


def test_reference_profiles_get_reference_names() -> None:
    rows = list(REFERENCE.values())
    labeller = _default_labeller().fit(_profiles(rows), _population())
    assert labeller.labels_ == dict(enumerate(REFERENCE))
    assert labeller.rule_of_ == dict(enumerate(REFERENCE))


@pytest.mark.parametrize("order", list(itertools.permutations(range(4)))[::5])
def test_names_follow_profiles_not_numbering(order) -> None:
    names = list(REFERENCE)
    rows = [REFERENCE[names[i]] for i in order]
    # Renumber too: row j holds reference profile order[j] under segment number 3 - j.
    numbering = [3 - j for j in range(4)]
    labels = _default_labeller().fit(_profiles(rows, numbering), _population()).labels_
    assert {labels[numbering[j]]: names[order[j]] for j in range(4)} == {n: n for n in names}


def test_labels_are_unique_even_for_identical_fallbacks() -> None:
    rules = [LabelRule(label="Old", when=[Condition(feature="Age", op=">=", z=1.0)])]
    rows = [(10, 80.0, 2.4, 2.84), (10, 43.6, 9.0, 2.84), (10, 43.6, 9.0, 2.84), (10, 43.6, 9.5, 2.84)]
    labels = SegmentLabeller(rules).fit(_profiles(rows), _population()).labels_
    assert len(set(labels.values())) == 4
    assert labels == {
        0: "Old",
        1: "High Work_Experience",
        2: "High Work_Experience (2)",
        3: "High Work_Experience (3)",
    }


def test_fallback_names() -> None:
    rules = [LabelRule(label="Old", when=[Condition(feature="Age", op=">=", z=1.0)])]
    rows = [
        (100, 80.0, 2.4, 2.84),  # Old
        (100, 30.0, 9.0, 1.0),  # z: Age -0.81, WE +1.94, FS -1.20
        (100, 44.0, 2.5, 3.0),  # all within 0.5 sd
        (0, np.nan, np.nan, np.nan),  # empty
        (100, 50.0, 0.0, 2.84),  # Age +0.38 (below 0.5), WE -0.71
    ]
    labeller = SegmentLabeller(rules, fallback_min_z=0.5).fit(_profiles(rows), _population())
    assert labeller.labels_ == {
        0: "Old",
        1: "High Work_Experience, Low Family_Size",  # the two strongest, strongest first
        2: TYPICAL,
        3: UNPOPULATED,
        4: "Low Work_Experience",
    }
    assert labeller.rule_of_ == {0: "Old", 1: None, 2: None, 3: None, 4: None}
    assert TYPICAL == "Typical Customers" and UNPOPULATED == "Unpopulated Segment"


def test_empty_segment_never_takes_a_rule() -> None:
    rules = [LabelRule(label="Old", when=[Condition(feature="Age", op=">=", z=1.0)])]
    # The empty segment's stale mean would meet the rule by the widest margin.
    rows = [(0, 99.0, 2.4, 2.84), (5, 70.0, 2.4, 2.84)]
    labels = SegmentLabeller(rules).fit(_profiles(rows), _population()).labels_
    assert labels == {0: UNPOPULATED, 1: "Old"}


def test_wider_margin_wins() -> None:
    rules = [
        LabelRule(label="Old", when=[Condition(feature="Age", op=">=", z=1.0)]),
        LabelRule(label="Older than average", when=[Condition(feature="Age", op=">", z=0.0)]),
    ]
    rows = [(500, 65.0, 2.4, 2.84), (10, 75.0, 2.4, 2.84)]  # both meet "Old"; 75 by more
    labels = SegmentLabeller(rules).fit(_profiles(rows), _population()).labels_
    assert labels == {0: "Older than average", 1: "Old"}


def test_rule_margin_is_smallest_over_conditions() -> None:
    rule = LabelRule(
        label="Old and experienced",
        when=[Condition(feature="Age", op=">=", z=1.0), Condition(feature="Work_Experience", op=">=", z=1.0)],
    )
    # Segment 0: huge Age margin, tiny WE margin; segment 1: both moderate -> wider minimum margin.
    rows = [(10, 95.0, 6.0, 2.84), (10, 70.0, 7.0, 2.84), (10, 95.0, 2.0, 2.84)]
    labels = SegmentLabeller([rule]).fit(_profiles(rows), _population()).labels_
    assert labels[1] == "Old and experienced"
    assert labels[0] == "High Age, High Work_Experience"
    assert labels[2] == "High Age"  # fails the WE condition: never named by the rule


def test_tie_goes_to_larger_segment() -> None:
    rules = [LabelRule(label="Old", when=[Condition(feature="Age", op=">=", z=1.0)])]
    rows = [(10, 70.0, 2.4, 2.84), (20, 70.0, 2.4, 2.84)]
    labels = SegmentLabeller(rules).fit(_profiles(rows), _population()).labels_
    assert labels[1] == "Old"


@pytest.mark.parametrize(
    "condition, named",
    [
        (Condition(feature="Age", op=">=", z=1.0), True),
        (Condition(feature="Age", op=">", z=1.0), False),
        (Condition(feature="Age", op="<=", z=1.0), True),
        (Condition(feature="Age", op="<", z=1.0), False),
        (Condition(feature="Age", op=">=", value=50.0), True),
        (Condition(feature="Age", op=">", value=50.0), False),
        (Condition(feature="Age", op="<=", value=50.0), True),
        (Condition(feature="Age", op="<", value=50.0), False),
        (Condition(feature="Age", op=">", value=49.999), True),
        (Condition(feature="Age", op="<", value=50.001), True),
    ],
)
def test_comparison_at_equality(condition, named) -> None:
    # Population Age mean 40, sd 10: a segment mean of 50 is exactly z = 1.
    population = _population(means=(40.0, 2.0, 3.0), sds=(10.0, 1.0, 1.0))
    rows = [(10, 50.0, 2.0, 3.0)]
    labeller = SegmentLabeller([LabelRule(label="Rule", when=[condition])]).fit(_profiles(rows), population)
    assert (labeller.labels_[0] == "Rule") is named
    if not named:
        assert labeller.labels_[0] == "High Age"


def test_nan_mean_never_meets_a_rule() -> None:
    rules = [LabelRule(label="Young", when=[Condition(feature="Age", op="<=", z=0.0)])]
    rows = [(10, np.nan, 2.4, 2.84), (10, 30.0, 2.4, 2.84)]
    labels = SegmentLabeller(rules).fit(_profiles(rows), _population()).labels_
    assert labels == {0: TYPICAL, 1: "Young"}


def test_fit_returns_self() -> None:
    labeller = _default_labeller()
    assert labeller.fit(_profiles(list(REFERENCE.values())), _population()) is labeller


def test_a_rule_on_a_feature_without_spread_names_no_segment() -> None:
    rules = [LabelRule(label="Typical age", when=[Condition(feature="Age", op=">=", z=0.0)]),
             LabelRule(label="Forty", when=[Condition(feature="Age", op="<=", value=40.0)])]
    rows = [(500, 40.0, 1.0, 2.0), (300, 40.0, 8.0, 4.0)]  # every customer is 40

    labels = SegmentLabeller(rules).fit(_profiles(rows), _population(means=(40.0, 2.4, 2.84), sds=(0.0, 3.4, 1.53)))

    assert set(labels.labels_.values()).isdisjoint({"Typical age", "Forty"})
    assert all(rule is None for rule in labels.rule_of_.values())
