"""Great Expectations, kept out of the core: suites as JSON in, results as JSON out.

Suites are found by name among the ones shipped in ``expectations/``
(installed as ``somseg.expectations``) or by path. GX is imported lazily
because importing it takes seconds; a run that fails before validation, or a
unit test of another step, does not pay it.
"""

import copy
import gc
import json
import logging
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from somseg.config import SegmentationConfig
from somseg.errors import ConfigError
from somseg.quality import AUTO_SUITE, report_statistics, suite_from_config
from somseg.tasks.private_apis import release_freed_memory, skip_gx_frame_fingerprint

SHIPPED_SUITES = "somseg.expectations"
_ONE_AT_A_TIME = threading.Lock()
_FROZEN = threading.Event()


def training_suite(config: SegmentationConfig) -> dict[str, Any]:
    """The suite a training run checks its input against: derived from ``config``, or the one it names."""
    if config.quality.suite == AUTO_SUITE:
        return suite_from_config(config)
    return load_suite(config.quality.suite)


def load_suite(suite: str) -> dict[str, Any]:
    """A suite by name (``customers``: a suite shipped with somseg) or by path to a suite JSON.

    Raises
    ------
    ConfigError
        If the suite is not found or is not a suite.
    """
    candidate = Path(suite)
    if candidate.suffix == ".json" or candidate.parent != Path("."):
        text = _read(candidate, suite)
        where = str(candidate)
    else:
        shipped = resources.files(SHIPPED_SUITES) / f"{suite}.json"
        if not shipped.is_file():
            known = ", ".join(sorted(p.name[:-5] for p in resources.files(SHIPPED_SUITES).iterdir() if p.name.endswith(".json")))
            raise ConfigError(
                f"expectation suite {suite!r} (quality.suite) is neither a shipped suite ({known}) nor a path to a suite JSON"
            )
        text, where = shipped.read_text(encoding="utf-8"), f"shipped suite {suite!r}"
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"expectation suite {where} is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict) or not isinstance(parsed.get("expectations"), list):
        raise ConfigError(f"expectation suite {where} has no 'expectations' list")
    if not parsed["expectations"]:
        raise ConfigError(f"expectation suite {where} (quality.suite) has no expectations; use 'auto' to derive one "
                          "from the config")
    malformed = [e for e in parsed["expectations"] if not isinstance(e, dict) or not isinstance(e.get("type"), str)]
    if malformed:
        raise ConfigError(f"expectation suite {where}: {len(malformed)} expectation(s) without a 'type', "
                          f"e.g. {json.dumps(malformed[0])[:200]}")
    return parsed


def _read(path: Path, name: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"expectation suite {name!r} (quality.suite) cannot be read: {exc.strerror or exc}") from exc


def run_suite(frame: pd.DataFrame, suite: dict[str, Any]) -> dict[str, Any]:
    """Validate ``frame`` against ``suite``; the full result as a JSON-ready dict, results in the suite's order.

    One validation runs at a time in a process: GX keeps its current
    context in a global, which two threads would overwrite for each other.
    """
    if not suite["expectations"]:
        return {"success": True, "suite_name": suite.get("name", "suite"), "statistics": report_statistics([]),
                "results": [], "meta": {}}
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    with _ONE_AT_A_TIME:
        _freeze_imported_objects()
        _silence_gx_logs()
        skip_gx_frame_fingerprint()
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        gx_suite = context.suites.add(gx.ExpectationSuite(**_suite_fields(suite)))
        batch = context.data_sources.add_pandas("somseg").add_dataframe_asset("table")
        validation = gx.ValidationDefinition(
            name="somseg-validation", data=batch.add_batch_definition_whole_dataframe("whole-table"), suite=gx_suite
        )
        report = validation.run(batch_parameters={"dataframe": frame}, result_format=_RESULT_FORMAT).to_json_dict()
        # As GX normalised them (18 -> 18.0), to find their results again.
        configs = [expectation.configuration.to_json_dict() for expectation in gx_suite.expectations]
        del context, gx_suite, batch, validation
    release_freed_memory()
    return _in_suite_order(report, configs, suite.get("name", "suite"))


def _in_suite_order(report: dict[str, Any], configs: list[dict[str, Any]], suite_name: str) -> dict[str, Any]:
    # GX lists expectations that raised (a missing column) first, so results
    # are matched to the suite by what they test, not by position.
    keys: list[str | None] = [_expectation_key(r["expectation_config"]) for r in report["results"]]
    results = []
    for config in configs:
        index = keys.index(_expectation_key(config))
        keys[index] = None  # a repeated expectation takes the next result
        results.append(report["results"][index])
    return {**report, "suite_name": suite_name, "success": all(r["success"] for r in results),
            "statistics": report_statistics(results), "results": results}


def _expectation_key(config: dict[str, Any]) -> str:
    """What an expectation tests: its type and arguments (without GX's batch id)."""
    kwargs = {k: v for k, v in config.get("kwargs", {}).items() if k != "batch_id"}
    return json.dumps([config["type"], kwargs], sort_keys=True, default=str)


# SUMMARY's counts and sample values, without the pandas query string that
# lists every unexpected row's index (a full-table filter per expectation).
_RESULT_FORMAT = {"result_format": "SUMMARY", "return_unexpected_index_query": False}


def _freeze_imported_objects() -> None:
    # Each validation ends with a full garbage collection (release_freed_memory). Once GX is imported the
    # process holds hundreds of thousands of the libraries' objects, alive until it exits; frozen, they are
    # out of the collector's walk, which then covers only what the run made since. The collector is asked
    # once whether they are frozen: get_freeze_count walks every frozen object.
    if _FROZEN.is_set():
        return
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()
    _FROZEN.set()


def _silence_gx_logs() -> None:
    # GX sets levels on some of its own child loggers, so the parent's level
    # alone does not stop their INFO chatter.
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("great_expectations"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _suite_fields(suite: dict[str, Any]) -> dict[str, Any]:
    # GX rejects keys it does not know; 'meta' and 'expectations' are all we keep. A deep copy, because GX
    # writes into the expectation dicts it is given (ids), and the caller's suite is part of a cache key.
    return copy.deepcopy({"name": suite.get("name", "suite"), "expectations": suite["expectations"], "meta": suite.get("meta", {})})
