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
    """Validate ``frame`` against ``suite``; the full result as a JSON-ready dict.

    Expectations on a single column present in ``frame`` are validated
    against that column alone, the others against the whole frame, and the
    results are put back in the suite's order in one report of GX's shape.
    GX filters the frame it is given for each column expectation; given all
    the columns, every filter copied them all (5 s of a 10 M-row validation).
    """
    import great_expectations as gx

    _silence_gx_logs()
    _skip_frame_fingerprint()
    context = gx.get_context(mode="ephemeral")
    try:
        return _validate(gx, context, frame, suite)
    finally:
        # GX keeps the last context as its global project, and with it every
        # frame validated: on 10 M rows its 320 MB stayed alive for the rest of the run.
        from great_expectations.data_context.data_context.context_factory import project_manager

        project_manager.set_project(None)


def _validate(gx: Any, context: Any, frame: pd.DataFrame, suite: dict[str, Any]) -> dict[str, Any]:
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("somseg")
    expectations = suite["expectations"]
    reports, positions, configs = [], [], {}
    for number, (column, members) in enumerate(_group_by_column(expectations, frame.columns).items()):
        part = frame if column is None else frame[[column]]
        fields = {**_suite_fields(suite), "name": f"{suite.get('name', 'suite')}-{number}",
                  "expectations": [expectations[i] for i in members]}
        gx_suite = context.suites.add(gx.ExpectationSuite(**fields))
        # As GX normalised them (18 -> 18.0), to find their results again.
        configs.update(zip(members, (e.configuration.to_json_dict() for e in gx_suite.expectations), strict=True))
        batch = source.add_dataframe_asset(f"table-{number}").add_batch_definition_whole_dataframe("whole-table")
        validation = gx.ValidationDefinition(name=f"somseg-validation-{number}", data=batch, suite=gx_suite)
        reports.append(validation.run(batch_parameters={"dataframe": part}, result_format=_RESULT_FORMAT).to_json_dict())
        positions.append(members)
    return _in_suite_order(reports, positions, configs, suite.get("name", "suite"))


def _group_by_column(expectations: list[dict[str, Any]], columns: pd.Index) -> dict[str | None, list[int]]:
    """Positions of the expectations per single column they test (None: the whole frame)."""
    groups: dict[str | None, list[int]] = {}
    for position, expectation in enumerate(expectations):
        column = expectation.get("kwargs", {}).get("column")
        groups.setdefault(column if column in columns else None, []).append(position)
    return groups


def _in_suite_order(
    reports: list[dict[str, Any]], positions: list[list[int]], configs: dict[int, dict[str, Any]], suite_name: str
) -> dict[str, Any]:
    ordered: dict[int, dict[str, Any]] = {}
    for report, members in zip(reports, positions, strict=True):
        # GX lists expectations that raised (a missing column) first, so
        # results are matched to the suite by what they test, not by position.
        keys: list[str | None] = [expectation_key(r["expectation_config"]) for r in report["results"]]
        for position in members:
            index = keys.index(expectation_key(configs[position]))
            keys[index] = None  # a repeated expectation takes the next result
            ordered[position] = report["results"][index]
    results = [ordered[position] for position in sorted(ordered)]
    meta = {**reports[0].get("meta", {}), "column_groups": len(reports)}
    return {**reports[0], "suite_name": suite_name, "success": all(r["success"] for r in results),
            "statistics": report_statistics(results), "results": results, "meta": meta}


def expectation_key(config: dict[str, Any]) -> str:
    """What an expectation tests: its type and arguments (without GX's batch id)."""
    kwargs = {k: v for k, v in config.get("kwargs", {}).items() if k != "batch_id"}
    return json.dumps([config["type"], kwargs], sort_keys=True, default=str)


def report_statistics(results: list[dict[str, Any]]) -> dict[str, Any]:
    """GX's ``statistics`` block for a list of expectation results."""
    met = sum(bool(r["success"]) for r in results)
    return {
        "evaluated_expectations": len(results),
        "successful_expectations": met,
        "unsuccessful_expectations": len(results) - met,
        "success_percent": 100.0 * met / len(results) if results else 100.0,
    }


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
