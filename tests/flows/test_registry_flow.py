"""Versioned models: trainings register into a registry, promotion picks the version scoring uses, rollback."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from somseg.config import GateConfig, PromotionConfig, SegmentationConfig
from somseg.errors import ModelBundleError, QualityGateError
from somseg.flows.cli import main
from somseg.flows.score import score_segments_flow
from somseg.flows.train import train_segments_flow
from somseg.io import file_sha256
from somseg.model import bundle_version
from somseg.registry import CURRENT_FILE, VERSIONS_DIR, list_versions, read_current

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_harness")]


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def test_trainings_register_versions_and_scoring_uses_the_promoted_one(
    sample_table: Path, tmp_path: Path, fast_config: SegmentationConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    registry, work = tmp_path / "models", str(tmp_path / "work")

    # The first version of a registry is promoted: its gates passed and there is nothing to compare with.
    first_run = Path(train_segments_flow(str(sample_table), str(tmp_path / "a"), fast_config, work, registry=str(registry)))
    first = _metrics(first_run)["promotion"]
    assert first["promoted"] and first["previous"] is None and first["version"] == bundle_version(first_run / "model")
    provenance = json.loads((first_run / "model" / "provenance.json").read_text())
    assert provenance["training_run_id"] and provenance["input"] == str(sample_table)
    assert provenance["input_sha256"] == file_sha256(sample_table) and provenance["run_dir"] == str(first_run)

    # Another k changes labels: below promotion.min_label_agreement the new version is registered, not promoted.
    k = _metrics(first_run)["evaluation"]["k_choice"]["recommended_k"]
    other = fast_config.model_copy(update={
        "segments": fast_config.segments.with_k(2 if k != 2 else 3),
        "promotion": PromotionConfig(min_label_agreement=0.99),
    })
    second_run = Path(train_segments_flow(str(sample_table), str(tmp_path / "b"), other, work, registry=str(registry)))
    second = _metrics(second_run)["promotion"]
    assert not second["promoted"] and second["current"] == first["version"] and second["compared_with"] == first["version"]
    assert second["label_agreement"] < 0.99 and "below promotion.min_label_agreement 0.99" in second["reason"]
    assert sorted(list_versions(registry)) == sorted([first["version"], second["version"]])

    # A gate-failing run publishes nothing, so registers and promotes nothing.
    before = ((registry / CURRENT_FILE).read_bytes(), list_versions(registry))
    strict = fast_config.model_copy(update={"gates": GateConfig(max_quantization_error=0.01)})
    with pytest.raises(QualityGateError):
        train_segments_flow(str(sample_table), str(tmp_path / "c"), strict, work, registry=str(registry))
    assert ((registry / CURRENT_FILE).read_bytes(), list_versions(registry)) == before

    # Scoring the registry scores its promoted version and says which, with the run that trained it.
    scored = Path(score_segments_flow(str(sample_table), str(registry), str(tmp_path / "scored"), work_dir=work))
    metrics = _metrics(scored)
    assert metrics["model_version"] == first["version"] and metrics["model_registry"] == str(registry.resolve())
    assert metrics["model"] == str(registry.resolve() / VERSIONS_DIR / first["version"])
    assert metrics["model_provenance"]["training_run_id"] == provenance["training_run_id"]
    assert metrics["model_provenance"]["input"] == str(sample_table)
    stored = pq.read_schema(scored / "segments.parquet").metadata
    assert stored[b"somseg.model_version"] == first["version"].encode()
    assert stored[b"somseg.training_run_id"] == provenance["training_run_id"].encode()

    # By hand, without a server: promote the refused version, roll back, and an unknown version is named.
    assert main(["promote", str(registry), second["version"]]) == 0
    assert read_current(registry).version == second["version"]
    assert main(["rollback", str(registry)]) == 0
    pointer = read_current(registry)
    assert (pointer.version, pointer.previous) == (first["version"], second["version"])
    capsys.readouterr()
    assert main(["promote", str(registry), "20990101T000000Z-00000000"]) == ModelBundleError.exit_code
    assert "has no version '20990101T000000Z-00000000'" in capsys.readouterr().err
    assert main(["models", str(registry)]) == 0
    assert f"* {first['version']}" in capsys.readouterr().out

    # Dated scoring: {date} in the paths is the run's day. A promoted version older than model_wait.max_age_hours
    # is waited for, then used with a warning (use_promoted, the default) or refused (fail).
    import shutil

    from somseg.config import ModelWaitConfig, ScoringConfig

    (tmp_path / "incoming").mkdir()
    shutil.copyfile(sample_table, tmp_path / "incoming" / "customers_2026-11-30.csv")
    template, out = str(tmp_path / "incoming" / "customers_{date}.csv"), str(tmp_path / "daily" / "{date}")
    old = ScoringConfig(model_wait=ModelWaitConfig(max_age_hours=1e-6, timeout_minutes=0))
    day = Path(score_segments_flow(template, str(registry), out, config=old, work_dir=work, run_date="2026-11-30"))
    assert day == (tmp_path / "daily" / "2026-11-30").resolve()
    metrics = _metrics(day)
    assert metrics["run_date"] == "2026-11-30" and metrics["input"].endswith("customers_2026-11-30.csv")
    assert "was trained at" in metrics["stale_model"] and metrics["model_version"] == first["version"]
    fresh = ScoringConfig(model_wait=ModelWaitConfig(max_age_hours=24, timeout_minutes=0))
    assert _metrics(Path(score_segments_flow(template, str(registry), out, config=fresh, work_dir=work,
                                             run_date="2026-11-30")))["stale_model"] is None

    config = tmp_path / "wait.yaml"
    config.write_text("model_wait: {max_age_hours: 0.000001, timeout_minutes: 0, on_timeout: fail}\n")
    argv = ["score", template, "--model", str(registry), "--out", out, "--config", str(config), "--work-dir", work]
    capsys.readouterr()
    assert main([*argv, "--date", "2026-11-30"]) == ModelBundleError.exit_code
    assert "waited 0 minute(s) for a version trained since" in capsys.readouterr().err
    assert main([*argv, "--date", "30.11.2026"]) == 2
    assert "--date '30.11.2026' is not a date written YYYY-MM-DD" in capsys.readouterr().err
    assert main([*argv, "--date", "2026-12-01"]) == 3, "the day's file is named: it does not exist"
    assert "customers_2026-12-01.csv does not exist" in capsys.readouterr().err
