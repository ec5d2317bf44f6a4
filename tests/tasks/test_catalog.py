"""The catalogue: one binding gives a step's cache key and its folder; artifacts stand for their keys."""

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from somseg.config import SomConfig
from somseg.dataset import plan_input
from somseg.tasks.catalog import (
    DONE_MARKER,
    PackedBlocks,
    StepCachePolicy,
    Store,
    Weights,
    binding_key,
    is_complete,
    step,
    writing,
)


@step("double-weights", saves=Weights)
def double(store: Store, weights: Weights, factor: float, som: SomConfig) -> np.ndarray:
    """A step of the catalogue, for these tests."""
    return weights.load() * factor


@step("explode", saves=Weights)
def explode(store: Store, weights: Weights) -> np.ndarray:
    raise RuntimeError("crash before anything is saved")


def _weights(store: Store, key: str = "k" * 64) -> Weights:
    folder = store.folder("seed", key)
    with writing(folder) as tmp:
        np.save(tmp / "weights.npy", np.ones((2, 2, 3)))
    return Weights(key, folder)


def _policy_key(task, store: Store, **inputs) -> str:
    context = SimpleNamespace(result_store=None)
    return task.cache_policy.compute_key(context, {"store": store, **inputs}, {})


def test_the_cache_key_and_the_folder_come_from_the_same_binding(tmp_path: Path) -> None:
    store = Store.at(tmp_path)
    weights = _weights(store)
    inputs = {"weights": weights, "factor": 2.0, "som": SomConfig()}

    saved = double.fn(store, **inputs)

    key = _policy_key(double, store, **inputs)
    assert isinstance(double.cache_policy, StepCachePolicy)
    assert saved.key == key and saved.folder == store.folder("double-weights", key)
    assert is_complete(saved.folder) and (saved.load() == 2.0).all()


def test_every_argument_enters_the_key_but_where_files_live(tmp_path: Path) -> None:
    store = Store.at(tmp_path)
    weights = _weights(store)
    base = _policy_key(double, store, weights=weights, factor=2.0, som=SomConfig())

    assert _policy_key(double, store, weights=weights, factor=3.0, som=SomConfig()) != base
    assert _policy_key(double, store, weights=weights, factor=2.0, som=SomConfig(sigma=1.5)) != base
    assert _policy_key(double, store, weights=_weights(store, "j" * 64), factor=2.0, som=SomConfig()) != base
    # Another work folder, the same binding: artifacts are known by their keys.
    moved = Weights(weights.key, tmp_path / "elsewhere")
    assert _policy_key(double, Store.at(tmp_path / "other"), weights=moved, factor=2.0, som=SomConfig()) == base


def test_an_input_is_known_by_its_content_not_its_name_or_its_time(tmp_path: Path) -> None:
    first = tmp_path / "a.csv"
    first.write_text("ID,Age\n1,30\n", encoding="utf-8")
    copy = tmp_path / "b.csv"
    copy.write_bytes(first.read_bytes())
    (a,), (b,) = plan_input(first, ["ID", "Age"], 1_000), plan_input(copy, ["ID", "Age"], 1_000)
    os.utime(copy, (1, 1))

    assert binding_key("ingest-partition", "src", {"part": a}) == binding_key("ingest-partition", "src", {"part": b})
    copy.write_text("ID,Age\n1,31\n", encoding="utf-8")
    (edited,) = plan_input(copy, ["ID", "Age"], 1_000)
    assert binding_key("ingest-partition", "src", {"part": edited}) != binding_key("ingest-partition", "src", {"part": a})


def test_arrays_enter_the_key_by_content() -> None:
    a = np.arange(6.0).reshape(2, 3)
    assert binding_key("s", "src", {"w": a}) == binding_key("s", "src", {"w": a.copy(order="F")})
    assert binding_key("s", "src", {"w": a}) != binding_key("s", "src", {"w": a + 1e-12})


def test_a_bare_path_is_refused_so_that_no_key_depends_on_a_location(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="bare path"):
        binding_key("s", "src", {"table": tmp_path / "t.csv"})


def test_a_failed_step_leaves_no_folder_and_nothing_half_written(tmp_path: Path) -> None:
    store = Store.at(tmp_path)
    weights = _weights(store)

    with pytest.raises(RuntimeError, match="crash"):
        explode.fn(store, weights)

    assert not (tmp_path / "artifacts" / "explode").exists()
    with pytest.raises(OSError):
        with writing(store.folder("half", "h" * 64)) as tmp:
            (tmp / "weights.npy").write_text("half")
            raise OSError("disk full")
    assert not store.folder("half", "h" * 64).exists()
    assert sorted(p.name for p in (tmp_path / "artifacts").iterdir()) == ["half", "seed"]
    assert not any((tmp_path / "artifacts" / "half").iterdir()), "no temporary folders left"


def test_a_deleted_folder_makes_the_step_run_again(tmp_path: Path) -> None:
    store = Store.at(tmp_path)
    weights = _weights(store)
    inputs = {"store": store, "weights": weights, "factor": 2.0, "som": SomConfig()}
    key = _policy_key(double, store, **{k: v for k, v in inputs.items() if k != "store"})
    remembered = SimpleNamespace(result_store=SimpleNamespace(exists=lambda k: k == key))

    assert double.cache_policy.compute_key(remembered, inputs, {}) != key  # record without files: rebuild
    saved = double.fn(**inputs)
    assert (saved.folder / DONE_MARKER).is_file()
    assert double.cache_policy.compute_key(remembered, inputs, {}) == key  # files and record: a cache hit


def test_a_packed_block_loads_the_rows_a_sampled_epoch_keeps_standardised(tmp_path: Path) -> None:
    from somseg.batch_som import TrainingBlock
    from somseg.cleaning import FeatureCleaner

    rows = np.arange(60.0).reshape(20, 3)
    folder = tmp_path / "packed"
    folder.mkdir()
    packed = PackedBlocks.save(([TrainingBlock(rows)], [0]), folder, "p" * 64)
    (block,) = packed.blocks
    assert packed.first_parts == (0,)
    cleaner = FeatureCleaner(["a", "b", "c"]).fit(pd.DataFrame(rows, columns=["a", "b", "c"]))
    positions = np.array([1, 4, 19])

    assert not block.weighted
    np.testing.assert_array_equal(block.rows(cleaner, positions), block.block(cleaner).rows[positions])


def test_a_step_finished_by_another_run_meanwhile_is_kept_not_moved_aside(tmp_path: Path) -> None:
    store = Store.at(tmp_path)
    weights = _weights(store)
    inputs = {"weights": weights, "factor": 2.0, "som": SomConfig()}
    where: dict[str, Path] = {}

    @step("racing-weights", saves=Weights)
    def racing(store: Store, weights: Weights, factor: float, som: SomConfig) -> np.ndarray:
        """Another run completes this step's folder while this one computes."""
        with writing(where["folder"]) as tmp:
            np.save(tmp / "weights.npy", np.full((2, 2, 3), 2.0))
            (tmp / "theirs").write_text("the other run's folder", encoding="utf-8")
        return weights.load() * factor

    folder = where["folder"] = store.folder("racing-weights", _policy_key(racing, store, **inputs))
    saved = racing.fn(store, **inputs)

    assert saved.folder == folder and (folder / "theirs").is_file() and (saved.load() == 2.0).all()
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name], "no temporary folder left"
    # A folder complete before the step ran (a rerun: its cache record was gone) is replaced, as before.
    again = racing.fn(store, **inputs)
    assert again.folder == folder and not (folder / "theirs").exists() and (again.load() == 2.0).all()


@pytest.mark.parametrize("dedup", ["never", "always"])
def test_an_imputed_part_loads_rows_standardised_as_the_cleaner_transforms_them(tmp_path: Path, dedup: str) -> None:
    import pandas as pd

    from somseg.cleaning import CleaningFit, ScalingRequest
    from somseg.tasks.cleaning import impute
    from somseg.tasks.ingest import ingest_partition

    source = tmp_path / "t.csv"
    pd.DataFrame({"ID": range(40), "a": [1.0, 2.0, None, 4.0] * 10, "b": [5.0, 5.0, 6.0, None] * 10}).to_csv(source, index=False)
    store = Store.at(tmp_path / "work")
    learner = CleaningFit(["a", "b"])
    (source_part,) = plan_input(source, ["ID", "a", "b"], 1_000)
    (part,) = ingest_partition.fn(store, source_part, "ID", ["a", "b"], 1_000, learner.request())
    learner.update(part.profile)
    request = learner.request()
    assert isinstance(request, ScalingRequest)
    imputed = impute.fn(store, request, part, ["a", "b"], dedup)
    learner.update(imputed.partial)
    cleaner = learner.result().cleaner

    expected = cleaner.transform(part.load())
    assert imputed.deduplicated is (dedup == "always") and imputed.table == part
    np.testing.assert_array_equal(imputed.matrix(cleaner), expected)
    block = imputed.block(cleaner)
    if dedup == "never":
        np.testing.assert_array_equal(block.rows, expected)
        positions = np.array([0, 2, 3, 17, 39])  # a sampled epoch loads only the rows it keeps
        np.testing.assert_array_equal(imputed.rows(cleaner, positions), expected[positions])
    else:
        distinct, counts = np.unique(expected, axis=0, return_counts=True)
        np.testing.assert_array_equal(block.rows, distinct)
        np.testing.assert_array_equal(block.weight, counts)


# --- garbage collection ---------------------------------------------------------------------------


def _aged(path: Path, days: float) -> None:
    when = __import__("time").time() - days * 86400
    os.utime(path, (when, when))


def _step_folder(root: Path, step: str, key: str, days: float) -> Path:
    from somseg.tasks.catalog import DONE_MARKER

    folder = root / "artifacts" / step / key[:32]
    folder.mkdir(parents=True)
    (folder / "data.npy").write_bytes(b"x" * 100)
    (folder / DONE_MARKER).write_text("complete\n")
    _aged(folder / DONE_MARKER, days)
    return folder


def test_garbage_collection_removes_only_what_no_run_used_lately_and_its_cached_results(tmp_path: Path) -> None:
    from datetime import timedelta

    from somseg.tasks.catalog import collect_garbage

    work, storage = tmp_path / "work", tmp_path / "results"
    storage.mkdir()
    old = _step_folder(work, "train-batch-som", "a" * 64, days=40)
    recent = _step_folder(work, "train-batch-som", "b" * 64, days=3)
    (storage / ("a" * 64)).write_text("{}")  # Prefect's result of the old folder's step
    (storage / ("b" * 64)).write_text("{}")
    (storage / "someone-elses-result").write_text("{}")
    killed = work / "artifacts" / "ingest-partition" / ".cccc.tmp-0123456789ab"
    killed.mkdir(parents=True)
    _aged(killed, 40)
    mine = work / "artifacts" / "notes.txt"
    mine.write_text("mine")
    unmarked = work / "artifacts" / "cluster-neurons" / ("d" * 32)
    unmarked.mkdir(parents=True)
    _aged(unmarked, 40)

    would = collect_garbage(work, timedelta(days=30), storage, dry_run=True)
    assert (would.step_folders, would.leftovers, would.results) == (1, 1, 1) and old.exists() and killed.exists()
    done = collect_garbage(work, timedelta(days=30), storage)

    assert done == would and done.bytes > 100
    assert not old.exists() and not killed.exists() and not (storage / ("a" * 64)).exists()
    assert recent.exists() and (storage / ("b" * 64)).exists() and (storage / "someone-elses-result").exists()
    assert mine.read_text() == "mine" and unmarked.exists(), "what the catalogue did not write stays"


def test_a_cache_hit_marks_the_step_folder_used(tmp_path: Path) -> None:
    from somseg.tasks.catalog import DONE_MARKER, is_complete

    folder = _step_folder(tmp_path, "clean", "e" * 64, days=40)

    assert is_complete(folder)
    assert (folder / DONE_MARKER).stat().st_mtime > __import__("time").time() - 60
    assert not is_complete(tmp_path / "missing")


def test_garbage_collection_waits_for_no_run(tmp_path: Path) -> None:
    from datetime import timedelta

    from somseg.errors import DataError
    from somseg.tasks.catalog import Store, collect_garbage

    _step_folder(tmp_path, "clean", "f" * 64, days=40)
    with Store.at(tmp_path).in_use(), pytest.raises(DataError, match="in use by a run"):
        collect_garbage(tmp_path, timedelta(days=30), None)
    assert collect_garbage(tmp_path, timedelta(days=30), None).step_folders == 1


def test_the_gc_command_reports_what_it_removed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from somseg.flows.cli import main

    _step_folder(tmp_path, "clean", "f" * 64, days=40)
    _step_folder(tmp_path, "clean", "0" * 64, days=1)

    assert main(["gc", "--work-dir", str(tmp_path), "--older-than", "7"]) == 0
    assert "removed 1 step folder(s) no run used for 7 day(s)" in capsys.readouterr().out
    assert main(["gc", "--work-dir", str(tmp_path), "--older-than", "-1"]) == 2
