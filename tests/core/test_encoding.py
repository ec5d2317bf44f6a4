"""somseg.encoding: ordinal and categorical features coded as numbers."""

from collections import Counter

import numpy as np
import pytest

from somseg.encoding import UnknownLevelError, count_levels, encode, learn_levels, model_columns


def test_an_ordinal_feature_is_its_levels_position_and_missing_stays_missing() -> None:
    values = np.array(["Low", " High", None, "", "Average"], dtype=object)
    (codes,) = encode(values, "Spending_Score", "ordinal", ["Low", "Average", "High"])
    np.testing.assert_array_equal(codes, [0.0, 2.0, np.nan, np.nan, 1.0])
    assert model_columns("Spending_Score", "ordinal", ["Low", "Average", "High"]) == ["Spending_Score"]


def test_a_categorical_feature_is_one_column_per_level() -> None:
    values = np.array(["Doctor", "Artist", None, "Doctor"], dtype=object)
    columns = encode(values, "Profession", "categorical", ["Artist", "Doctor"])
    np.testing.assert_array_equal(np.column_stack(columns), [[0, 1], [1, 0], [np.nan, np.nan], [0, 1]])
    assert model_columns("Profession", "categorical", ["Artist", "Doctor"]) == ["Profession=Artist", "Profession=Doctor"]


def test_numbers_are_compared_as_their_text() -> None:
    (codes,) = encode(np.array([1, 3, 2]), "Band", "ordinal", ["1", "2", "3"])
    np.testing.assert_array_equal(codes, [0.0, 2.0, 1.0])


def test_a_value_that_is_no_level_is_named_with_its_count_and_samples() -> None:
    values = np.array(["Low", "Very High", "Very High", "high"], dtype=object)
    with pytest.raises(UnknownLevelError, match=r"column 'Spending_Score': 3 row\(s\) hold values that are not among "
                                                r"its categories \('Low', 'Average', 'High'\); sample values: "
                                                r"'Very High', 'high'"):
        encode(values, "Spending_Score", "ordinal", ["Low", "Average", "High"])


def test_levels_are_learnt_from_added_counts_most_frequent_first() -> None:
    counts = count_levels(np.array(["b", "a", "b", None, " c ", ""], dtype=object))
    counts += count_levels(np.array(["a", "c"], dtype=object))
    assert counts == Counter({"b": 2, "a": 2, "c": 2})
    assert learn_levels(counts + Counter({"c": 1}), "x", 10) == ["c", "a", "b"]


def test_too_many_levels_is_an_identifier_not_a_category() -> None:
    counts = Counter({f"id{i}": 1 for i in range(60)})
    with pytest.raises(ValueError, match=r"column 'email' has 60 distinct values .* at most 50: list the ones"):
        learn_levels(counts, "email", 50)
    with pytest.raises(ValueError, match="no values"):
        learn_levels(Counter(), "email", 50)
