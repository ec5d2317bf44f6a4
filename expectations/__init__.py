"""Great Expectations suites shipped with somseg, as JSON (read with importlib.resources)."""
