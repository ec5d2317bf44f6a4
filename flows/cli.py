"""The ``segment`` command: run the flows from a shell.

Exit status 0 on success; on a failure the pipeline expects (bad input,
failed expectations, failed gate, bad config) a one-paragraph message on
stderr and a non-zero status, with a traceback only under ``--debug``.
"""

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from prefect.states import State

    from somseg.config import ScoringConfig, SegmentationConfig

EXIT_UNEXPECTED = 70
WORK_DIR_HELP = "folder for cached intermediate artifacts (default: $SOMSEG_WORK_DIR or .somseg)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segment", description="Customer segmentation with Self-Organizing Maps.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks and Prefect's error logs")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a segmentation on a customer table")
    train.add_argument("input", nargs="?", help="CSV or Parquet table (default: the sample in data/)")
    train.add_argument("--config", help="YAML config file (default: the defaults for any table; "
                       "configs/reference.yaml is the reference recipe)")
    train.add_argument("--id-column", help="the customer id column (overrides the config's id_column; default ID)")
    train.add_argument("--features", help="comma-separated feature columns (overrides the config's features; "
                       "default: every numeric column but the id)")
    train.add_argument("--out", default="runs/latest", help="output folder (default: runs/latest)")
    train.add_argument("--work-dir", help=WORK_DIR_HELP)
    train.add_argument("--registry", help="model registry folder: register the model there as a new version and "
                       "promote it by the config's promotion rules (default: none, the run folder's model/ only)")
    score = commands.add_parser("score", help="segment new customers with a saved model, without retraining")
    score.add_argument("input", help="CSV or Parquet table with the model's id column and features")
    score.add_argument("--model", required=True, help="model bundle folder written by 'segment train' (DIR/model), "
                       "or a model registry (its promoted version)")
    score.add_argument("--out", default="runs/scored", help="output folder (default: runs/scored)")
    score.add_argument("--config", help="YAML scoring config: drift gate and chunk size")
    score.add_argument("--work-dir", help=WORK_DIR_HELP)
    score.add_argument("--date", help="the day scored, YYYY-MM-DD: what {date} in INPUT and --out stands for "
                       "(default: today, UTC)")
    promote = commands.add_parser("promote", help="make a registered model version the one scoring uses")
    promote.add_argument("registry", help="a model registry folder ('segment train --registry')")
    promote.add_argument("version", help="the version to promote ('segment models REGISTRY' lists them)")
    promote.add_argument("--reason", default="promoted by hand", help="recorded in CURRENT and HISTORY.jsonl")
    rollback = commands.add_parser("rollback", help="promote again the version the promoted one replaced")
    rollback.add_argument("registry", help="a model registry folder")
    models = commands.add_parser("models", help="list a model registry's versions and which one is promoted")
    models.add_argument("registry", help="a model registry folder")
    report = commands.add_parser("report", help="rebuild report.html and figures/ of a training run folder")
    report.add_argument("run_dir", help="a folder written by 'segment train'")
    gc = commands.add_parser("gc", help="remove cached step outputs no run has used for a while")
    gc.add_argument("--work-dir", help=WORK_DIR_HELP)
    gc.add_argument("--older-than", type=float, default=30.0, metavar="DAYS",
                    help="remove what no run has written or read for this many days (default: 30)")
    gc.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    alerts = commands.add_parser("alerts", help="create or update the automations of alerts.yaml on the Prefect server")
    alerts.add_argument("--block", help="block the alerts are sent through, as TYPE/NAME "
                        "(default: $SOMSEG_ALERT_BLOCK or webhook/somseg-alerts)")
    alerts.add_argument("--file", default="alerts.yaml", help="the automations (default: alerts.yaml)")
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as an interrupt: the run stops, cleans up and stops its server."""


_signals: list[int] = []  # SIGTERM once received: Prefect may re-raise the interrupt as a plain one


def _terminate(signum: int, frame: object) -> None:
    _signals.append(signum)
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_environment()
    from somseg.errors import SomsegError

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        return _run(args)
    except SomsegError as error:
        if args.debug:
            raise
        print(f"segment {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        if _signals:
            print("terminated", file=sys.stderr)
            return 128 + signal.SIGTERM
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        print(f"segment {args.command}: unexpected error: {type(error).__name__}: {error}\n"
              "rerun with --debug for the traceback", file=sys.stderr)
        return EXIT_UNEXPECTED
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    if args.command == "report":
        # Only the run folder is read, so no flow (and no Prefect server) is needed.
        from somseg.report import build_report

        print(f"report written to {build_report(args.run_dir)}")
        return 0
    if args.command == "gc":
        return _collect_garbage(args)
    if args.command in ("promote", "rollback", "models"):
        # The registry is a folder: changing its pointer needs no flow, no Prefect server.
        return _registry_command(args)
    if args.command == "alerts":
        # Automations live on the configured server: no temporary one is started for them.
        from somseg.flows.alerts import create_alerts, default_block

        return create_alerts(args.file, args.block or default_block())
    from somseg.layout import default_work_dir

    work_dir = args.work_dir or default_work_dir()
    config = _preflight(args, work_dir)
    from somseg.flows.server import launch_unless_configured, prefect_api

    server = launch_unless_configured()
    try:
        _preload_libraries(args.command)
        with prefect_api(server) as session:
            state = _train(args, config, work_dir) if args.command == "train" else _score(args, config, work_dir)
            session.flow_run_id = state.state_details.flow_run_id
        out = state.result()
    finally:
        if server is not None:
            server.stop()
    print(f"segments written to {out}")
    return 0


def _collect_garbage(args: argparse.Namespace) -> int:
    from datetime import timedelta
    from pathlib import Path

    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH

    from somseg.errors import ConfigError
    from somseg.layout import default_work_dir
    from somseg.tasks.catalog import collect_garbage

    if not args.older_than >= 0:
        raise ConfigError(f"--older-than {args.older_than}: give a number of days, 0 or more")
    work_dir = args.work_dir or default_work_dir()
    done = collect_garbage(work_dir, timedelta(days=args.older_than), Path(PREFECT_LOCAL_STORAGE_PATH.value()),
                           dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{work_dir}: {verb} {done.step_folders} step folder(s) no run used for {args.older_than:g} day(s), "
          f"{done.leftovers} left half-written by killed runs and {done.results} cached result(s) of them: "
          f"{done.bytes / 2**20:.1f} MiB")
    return 0


def _registry_command(args: argparse.Namespace) -> int:
    from somseg import registry
    from somseg.runs import utc_now

    if args.command == "promote":
        pointer = registry.promote(args.registry, args.version, args.reason, utc_now())
    elif args.command == "rollback":
        pointer = registry.rollback(args.registry, utc_now())
    else:
        print(registry.describe(args.registry))
        return 0
    print(f"{pointer.version} is now the promoted version of {args.registry} (previous: {pointer.previous or 'none'}; "
          f"{pointer.reason})")
    return 0


def _preload_libraries(command: str) -> None:
    # Imported now, while the temporary server starts on the other core, not
    # later in the middle of a step: Great Expectations is slow to import.
    import great_expectations  # noqa: F401

    if command == "train":
        import somseg.flows.train
    else:
        import somseg.flows.score  # noqa: F401


def _preflight(args: argparse.Namespace, work_dir: str) -> Any:
    """What needs neither the server nor the heavy libraries, checked first: the config, the input, the
    model's folder, the output folder. A mistake there is reported in well under a second.

    Returns the command's config.
    """
    from pathlib import Path

    from somseg.config import load_config, load_scoring_config
    from somseg.errors import ModelBundleError
    from somseg.layout import SAMPLE_TABLE

    model = registry = None
    if args.command == "train":
        config: Any = _with_overrides(load_config(args.config), args.id_column, args.features)
        registry = args.registry
    else:
        from datetime import UTC, datetime

        from somseg.runs import dated, parse_run_date

        day = parse_run_date(args.date, "--date") if args.date else datetime.now(UTC).date()
        args.date, args.input, args.out = day.isoformat(), dated(args.input, day), dated(args.out, day)
        config, model = load_scoring_config(args.config), args.model
        if not Path(model).is_dir():
            raise ModelBundleError(f"model bundle {model} does not exist (give the model folder a training run wrote, "
                                   "or a model registry)")
    # Imported once the config is read: they load pandas and pyarrow.
    from somseg.dataset import protected_paths
    from somseg.io import prepare_run_folder, require_writable_folder

    if model is not None:
        from somseg.registry import resolve_model

        resolve_model(model)  # a registry with nothing promoted is named now, not after the server started
    prepare_run_folder(args.out, protected_paths(args.input or SAMPLE_TABLE, work_dir, model, registry))
    require_writable_folder(work_dir, f"work folder {work_dir}")
    if registry is not None:
        from somseg.registry import check_registry_folder

        require_writable_folder(check_registry_folder(registry), f"model registry {registry}")
    return config


def _train(args: argparse.Namespace, config: "SegmentationConfig", work_dir: str) -> "State":
    from somseg.flows.train import train_segments_flow
    from somseg.layout import SAMPLE_TABLE

    _hide_tracebacks(args.debug)
    return train_segments_flow(
        input_path=args.input or SAMPLE_TABLE, out_dir=args.out, config=config, work_dir=work_dir,
        registry=args.registry, return_state=True,
    )


def _with_overrides(config: "SegmentationConfig", id_column: str | None, features: str | None) -> "SegmentationConfig":
    from somseg.config import validate_config
    from somseg.errors import ConfigError

    settings = config.model_dump()
    if id_column is not None:
        settings["id_column"] = id_column
    if features is not None:
        names = [name.strip() for name in features.split(",") if name.strip()]
        if not names:
            raise ConfigError("--features names no column; give comma-separated names, e.g. --features Age,Income")
        settings["features"] = [{"name": name} for name in names]
    return validate_config(settings, "the config with --id-column and --features")


def _score(args: argparse.Namespace, config: "ScoringConfig", work_dir: str) -> "State":
    from somseg.flows.score import score_segments_flow

    _hide_tracebacks(args.debug)
    return score_segments_flow(
        input_path=args.input, model_dir=args.model, out_dir=args.out, config=config, work_dir=work_dir,
        run_date=args.date, return_state=True,
    )


def _quiet_environment() -> None:
    # No internet here and no use for telemetry; its heartbeat also locks the
    # ephemeral server's SQLite database on a fresh PREFECT_HOME.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The temporary server's first start migrates a new SQLite database,
    # which on a busy machine can outlast Prefect's default startup timeout.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


class _NoTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


def _hide_tracebacks(debug: bool) -> None:
    if debug:
        return
    for name in ("prefect.flow_runs", "prefect.task_runs", "prefect"):
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(_NoTraceback())


def run() -> NoReturn:
    """The console entry point: :func:`main`, then an immediate exit.

    When ``main`` returns, every output is written and renamed, the logs and
    events are delivered and the temporary server is stopped. What is left is
    the interpreter's own teardown (freeing every object, no Python code of
    ours), so the process ends at once instead.
    """
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
