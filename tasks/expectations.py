"""Great Expectations, kept out of the core: suites as JSON, results as JSON.

GX is imported lazily because importing it costs several seconds; a run
that fails before validation, or a unit test of another step, does not pay it.
"""

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from somseg.errors import ConfigError

EXPECTATIONS_DIR = Path(__file__).resolve().parents[1] / "expectations"
_SAMPLE_VALUES = 5


def resolve_suite(suite: str) -> Path:
    """A suite name in ``expectations/`` (``customers``) or a path to a suite JSON."""
    candidate = Path(suite)
    if candidate.suffix == ".json" or candidate.parent != Path("."):
        path = candidate
    else:
        path = EXPECTATIONS_DIR / f"{suite}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in EXPECTATIONS_DIR.glob("*.json")))
        raise ConfigError(f"expectation suite {suite!r} not found at {path}; suites in {EXPECTATIONS_DIR}: {known}")
    return path


def load_suite(path: Path) -> dict[str, Any]:
    try:
        suite = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"expectation suite {path} is not readable JSON: {exc}") from exc
    if not isinstance(suite, dict) or "expectations" not in suite:
        raise ConfigError(f"expectation suite {path} has no 'expectations' list")
    return suite


def run_suite(frame: pd.DataFrame, suite: dict[str, Any]) -> dict[str, Any]:
    """Validate ``frame`` against ``suite``; the full result as a JSON-ready dict."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    _silence_gx_logs()
    _skip_frame_fingerprint()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    gx_suite = context.suites.add(gx.ExpectationSuite(**_suite_fields(suite)))
    asset = context.data_sources.add_pandas("somseg").add_dataframe_asset("table")
    batch = asset.add_batch_definition_whole_dataframe("whole-table")
    validation = gx.ValidationDefinition(name="somseg-validation", data=batch, suite=gx_suite)
    result = validation.run(batch_parameters={"dataframe": frame}, result_format=_RESULT_FORMAT)
    return result.to_json_dict()


# SUMMARY's counts and sample values, without the pandas query string that
# lists every unexpected row's index (a full-table filter per expectation).
_RESULT_FORMAT = {"result_format": "SUMMARY", "return_unexpected_index_query": False}


def _skip_frame_fingerprint() -> None:
    # GX fingerprints every in-memory frame under HASH_THRESHOLD bytes with an
    # MD5 over a per-row hash, only to put it in the batch markers: 3 s at 10 M
    # rows. The pipeline already keys everything on the input file's SHA-256.
    from great_expectations.execution_engine import pandas_execution_engine

    # tests/tasks/test_expectations.py fails if an upgrade renames it.
    if hasattr(pandas_execution_engine, "HASH_THRESHOLD"):
        pandas_execution_engine.HASH_THRESHOLD = 0


def _silence_gx_logs() -> None:
    # GX sets levels on some of its own child loggers, so the parent's level
    # alone does not stop their INFO chatter.
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("great_expectations"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _suite_fields(suite: dict[str, Any]) -> dict[str, Any]:
    # GX rejects keys it does not know; 'meta' and 'expectations' are all we keep.
    return {"name": suite.get("name", "suite"), "expectations": suite["expectations"], "meta": suite.get("meta", {})}


def failed_expectations(report: dict[str, Any]) -> list[str]:
    """One line per failed expectation: type, column, unexpected count, sample values."""
    lines = []
    for result in report.get("results", []):
        if result.get("success"):
            continue
        config = result.get("expectation_config", {})
        kwargs = {k: v for k, v in config.get("kwargs", {}).items() if k != "batch_id"}
        column = kwargs.pop("column", None)
        lines.append(_describe_failure(config.get("type", "?"), column, kwargs, result.get("result", {})))
    return lines


def _describe_failure(kind: str, column: str | None, kwargs: dict, outcome: dict) -> str:
    where = f"column {column!r}" if column else "table"
    settings = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    parts = [f"{kind} on {where}" + (f" ({settings})" if settings else "")]
    if "unexpected_count" in outcome:
        percent = outcome.get("unexpected_percent") or 0.0
        parts.append(f"{outcome['unexpected_count']} unexpected row(s) ({percent:.2f}%)")
    if outcome.get("partial_unexpected_list"):
        samples = ", ".join(repr(v) for v in outcome["partial_unexpected_list"][:_SAMPLE_VALUES])
        parts.append(f"sample values: {samples}")
    if "observed_value" in outcome:
        parts.append(f"observed: {outcome['observed_value']}")
    return "; ".join(parts)
