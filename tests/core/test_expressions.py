"""somseg.expressions: derived features, parsed and evaluated without eval."""

import numpy as np
import pytest

from somseg.expressions import DateParseError, parse_expression


def test_numbers_columns_operators_and_functions() -> None:
    columns = {"Year_Birth": np.array([1980.0, np.nan, 1950.0]), "Annual Income (k$)": np.array([15.0, 20.0, 30.0]),
               "a": np.array([1.0, -5.0, 2.0]), "b": np.array([2.0, 1.0, np.nan])}
    age = parse_expression("2014 - Year_Birth")
    assert age.columns == ("Year_Birth",)
    np.testing.assert_array_equal(age.evaluate(columns), [34.0, np.nan, 64.0])
    income = parse_expression('"Annual Income (k$)" * 1000 / 12')
    assert income.columns == ("Annual Income (k$)",)
    np.testing.assert_allclose(income.evaluate(columns), [1250.0, 20000 / 12, 2500.0])
    mixed = parse_expression("max(a, b, 0) + log1p(abs(-a)) - -1 + a ** 2")
    assert mixed.columns == ("a", "b")
    np.testing.assert_allclose(mixed.evaluate(columns), [2 + np.log1p(1) + 1 + 1, 1 + np.log1p(5) + 1 + 25, np.nan])


def test_undefined_values_are_missing_not_infinite() -> None:
    values = parse_expression("log(x) + 1 / x").evaluate({"x": np.array([0.0, -1.0, 1.0])})
    np.testing.assert_array_equal(values, [np.nan, np.nan, 1.0])
    np.testing.assert_array_equal(parse_expression("2 * 3").evaluate({"x": np.zeros(2)}), [6.0, 6.0])


@pytest.mark.parametrize(("text", "message"), [
    ('__import__("os").system("true")', "is not allowed"),
    ("exp(a)", r"unknown function 'exp' \(allowed: abs, days_since, log, log1p, max, min, sqrt, years_since\)"),
    ("a.real", "is not allowed"),
    ("[a][0]", "is not allowed"),
    ("a if b else c", "is not allowed"),
    ("min(a)", r"min\(\) takes two or more arguments, got 1"),
    ("sqrt(a, b)", r"sqrt\(\) takes 1 argument, got 2"),
    ("True + a", "is neither a number nor a column name"),
    ("log(x=a)", "is not allowed"),
    ("(a +", "is not valid"),
])
def test_anything_else_is_refused_with_what_and_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_expression(text)


def test_days_and_years_since_a_date_column() -> None:
    since = parse_expression('years_since(Dt_Customer, "2014-12-31", "%d-%m-%Y") + Kidhome')
    assert since.columns == ("Dt_Customer", "Kidhome") and since.date_columns == ("Dt_Customer",)
    values = since.evaluate({"Dt_Customer": np.array(["31-12-2013", None, " 01-01-2014 "], dtype=object),
                             "Kidhome": np.array([1.0, 0.0, 2.0])})
    np.testing.assert_allclose(values, [365 / 365.2425 + 1, np.nan, 364 / 365.2425 + 2])
    days = parse_expression('days_since("Last order", "2014-12-31")')
    np.testing.assert_array_equal(days.evaluate({"Last order": np.array(["2014-12-01", "", "2015-01-01T00:00"],
                                                                          dtype=object)}), [30.0, np.nan, -1.0])
    # Parquet's date and timestamp types are taken as they are.
    stamps = np.array(["2014-12-30", "NaT"], dtype="datetime64[ns]")
    np.testing.assert_array_equal(days.evaluate({"Last order": stamps}), [1.0, np.nan])


def test_a_date_that_does_not_parse_is_named_with_samples() -> None:
    days = parse_expression('days_since(Dt, "2014-12-31")')
    with pytest.raises(DateParseError, match=r"column 'Dt': 2 value\(s\) are not dates in ISO 8601 \(give the format "
                                             r"as a third argument.*sample values: '04-09-2012', 'soon'"):
        days.evaluate({"Dt": np.array(["2014-01-01", "04-09-2012", "soon"], dtype=object)})


@pytest.mark.parametrize(("text", "message"), [
    ('days_since(Dt)', r"days_since\(\) takes a date column, a reference date and optionally a format"),
    ('days_since(Dt, 2014)', "must be quoted text"),
    ('days_since(1 + Dt, "2014-12-31")', "first argument of days_since\\(\\) must be a column name"),
    ('years_since(Dt, "yesterday")', r"reference date 'yesterday' is not a date"),
])
def test_date_functions_are_checked_when_the_config_is_read(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_expression(text)
