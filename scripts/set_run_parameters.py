#!/usr/bin/env python
"""Change parameters of an existing flow run, before ``prefect flow-run retry``.

    python scripts/set_run_parameters.py <flow-run-id> config.gates.max_quantization_error=0.5 [KEY=VALUE ...]

A retried run keeps its parameters (the CLI and the UI's Retry button alike),
so a run that failed on a wrong setting would fail again. This rewrites the
named settings in the run's stored parameters (dotted keys reach into the
``config`` form; values are read as YAML: ``0.5``, ``true``, ``[1, 2]``,
``text``), prints the result, and leaves everything else as it was. Then
``prefect flow-run retry <flow-run-id>`` reruns it: the steps that had
completed and whose inputs did not change come from the cache.

Uses the API of the current Prefect profile (``PREFECT_API_URL``).
"""

import json
import sys
from typing import Any
from uuid import UUID

import yaml


def set_dotted(parameters: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = parameters
    for key in parents:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            raise SystemExit(f"cannot set {dotted}: {key} is {child!r}, not a mapping")
        node = child
    node[last] = value


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not all("=" in item for item in argv[1:]):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    from prefect import get_client

    flow_run_id = UUID(argv[0])
    with get_client(sync_client=True) as client:
        parameters = dict(client.read_flow_run(flow_run_id).parameters)
        for item in argv[1:]:
            key, raw = item.split("=", 1)
            set_dotted(parameters, key.strip(), yaml.safe_load(raw))
        client.update_flow_run(flow_run_id, parameters=parameters).raise_for_status()
    print(json.dumps(parameters, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
