#!/usr/bin/env python
"""Correct parameters of a failed flow run, before ``prefect flow-run retry``.

    python scripts/set_run_parameters.py <flow-run-id> config.gates.max_quantization_error=0.5 [KEY=VALUE ...]

A retried run keeps its parameters (the CLI and the UI's Retry button alike),
so a run that failed on a wrong setting would fail again. This rewrites the
named settings in the run's stored parameters (dotted keys reach into the
``config`` form; values are read as YAML: ``0.5``, ``true``, ``[1, 2]``,
``text``), and leaves everything else as it was. Then
``prefect flow-run retry <flow-run-id>`` reruns it: the steps that had
completed and whose inputs did not change come from the cache.

What it refuses (exit 2, nothing changed): a key that is not a parameter of
the run's flow or a setting of its config (a typo such as
``max_quantisation_error``), a value the flow's config would refuse, and a
run that is not Failed, Crashed or Cancelled (a completed run's parameters
are what ran). The old values stay visible: the run gets the tag
``parameters-edited`` and a Markdown artifact ``parameters-edited`` listing
each setting, its old and new value, and when it was changed.

The alternative that needs no script: a new run with the corrected
parameters (``prefect deployment run ... --params``, or Custom run in the
UI), which reuses the cache the same way.

Uses the API of the current Prefect profile (``PREFECT_API_URL``).
"""

import copy
import inspect
import json
import sys
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

import yaml

EDITABLE_STATES = {"FAILED", "CRASHED", "CANCELLED"}
EDIT_TAG = "parameters-edited"
_MISSING = object()


def flow_parameters(flow_name: str) -> tuple[set[str], Any]:
    """The parameter names of one of this project's flows, and the pydantic model of its ``config``."""
    from somseg.config import ScoringConfig, SegmentationConfig

    if flow_name == "train-segments":
        from somseg.flows.train import train_segments_flow as flow

        model: Any = SegmentationConfig
    elif flow_name == "score-segments":
        from somseg.flows.score import score_segments_flow as flow

        model = ScoringConfig
    else:
        raise ValueError(f"flow {flow_name!r} is not one of this project's flows (train-segments, score-segments)")
    return set(inspect.signature(flow.fn).parameters), model


def edit_parameters(
    flow_name: str, parameters: dict[str, Any], edits: list[str]
) -> tuple[dict[str, Any], list[tuple[str, Any, Any]]]:
    """``parameters`` with ``edits`` (``dotted.key=yaml``) applied and checked as the flow would check them.

    Returns the new parameters and each change as (key, old, new); an old
    value that was not set is ``None``.

    Raises
    ------
    ValueError
        Naming the key that the flow does not have, or the config's own
        message for a value it refuses.
    """
    from somseg.config import validate_config

    names, model = flow_parameters(flow_name)
    edited = copy.deepcopy(parameters)
    changes = []
    for item in edits:
        if "=" not in item:
            raise ValueError(f"{item!r} is not KEY=VALUE")
        key, raw = (part.strip() for part in item.split("=", 1))
        top = key.split(".", 1)[0]
        if top not in names:
            raise ValueError(f"{key}: {top!r} is not a parameter of {flow_name} (it has {', '.join(sorted(names))})")
        if "." in key and top != "config":
            raise ValueError(f"{key}: only config has settings inside it")
        old = _get_dotted(edited, key)
        new = yaml.safe_load(raw)
        _set_dotted(edited, key, new)
        changes.append((key, None if old is _MISSING else old, new))
    if "config" in edited:
        # The same check the flow applies to its config parameter: unknown keys and bad values are refused.
        validate_config(edited["config"] or {}, f"the run's config after {', '.join(edits)}", model)
    return edited, changes


def _get_dotted(parameters: dict[str, Any], dotted: str) -> Any:
    node: Any = parameters
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return node


def _set_dotted(parameters: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = parameters
    for key in parents:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            raise ValueError(f"cannot set {dotted}: {key} is {child!r}, not a mapping")
        node = child
    node[last] = value


def change_record(changes: list[tuple[str, Any, Any]], when: datetime) -> str:
    """The Markdown the run keeps: what was changed, from what, to what, and when."""
    lines = [f"Parameters changed {when:%Y-%m-%d %H:%M:%S} UTC, before a retry; the earlier attempts ran with the old values.",
             "", "| setting | old value | new value |", "|---|---|---|"]
    lines += [f"| `{key}` | `{json.dumps(old, default=str)}` | `{json.dumps(new, default=str)}` |" for key, old, new in changes]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    from prefect import get_client
    from prefect.client.schemas.actions import ArtifactCreate

    from somseg.errors import ConfigError

    flow_run_id = UUID(argv[0])
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        flow_name = client.read_flow(run.flow_id).name
        state = run.state.type.value if run.state else "UNKNOWN"
        if state not in EDITABLE_STATES:
            print(f"flow run {flow_run_id} is {state}: only a Failed, Crashed or Cancelled run's parameters may be "
                  "corrected before a retry; start a new run with the parameters you want", file=sys.stderr)
            return 2
        try:
            parameters, changes = edit_parameters(flow_name, dict(run.parameters), argv[1:])
        except (ValueError, ConfigError) as error:
            print(f"nothing changed: {error}", file=sys.stderr)
            return 2
        client.update_flow_run(flow_run_id, parameters=parameters, tags=sorted({*run.tags, EDIT_TAG})).raise_for_status()
        client.create_artifact(ArtifactCreate(
            key=EDIT_TAG, type="markdown", flow_run_id=flow_run_id,
            data=change_record(changes, datetime.now(timezone.utc)),
            description="Parameters corrected before a retry",
        ))
    for key, old, new in changes:
        print(f"{key}: {json.dumps(old, default=str)} -> {json.dumps(new, default=str)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
