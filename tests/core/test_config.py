"""somseg.config: the defaults for any table, the reference recipe, strictness, YAML loading, validators."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from somseg.config import (
    Condition,
    LabelRule,
    LabelsConfig,
    SegmentationConfig,
    SomConfig,
    load_config,
    validate_config,
)
from somseg.errors import ConfigError

REFERENCE_YAML = Path(__file__).resolve().parents[2] / "configs" / "reference.yaml"


def test_the_defaults_are_for_any_table() -> None:
    cfg = SegmentationConfig()
    assert cfg.id_column == "ID"
    assert cfg.features == [] and cfg.labels.rules == [], "every numeric column; segments named from their profiles"
    assert (cfg.quality.suite, cfg.quality.min_rows, cfg.quality.max_missing_share) == ("auto", 100, 0.5)


def test_the_reference_config_holds_the_notebooks_recipe() -> None:
    cfg = load_config(REFERENCE_YAML)
    assert cfg.id_column == "ID"
    assert cfg.feature_names == ["Age", "Work_Experience", "Family_Size"]
    assert [(f.min, f.max) for f in cfg.features] == [(18, 100), (0, 60), (1, 20)]
    assert cfg.quality.suite == "customers"
    assert (cfg.som.rows, cfg.som.cols) == (8, 8)
    assert cfg.som.sigma == 2.0
    assert cfg.som.learning_rate == 0.3
    assert cfg.som.iterations == 8000
    assert cfg.som.seed == 42
    assert cfg.som.neighborhood == "gaussian"
    assert cfg.som.init == "random"
    assert cfg.som.engine == "minisom"
    assert cfg.segments.k == 4
    assert cfg.segments.n_init == 20
    assert cfg.segments.random_state == 42
    assert cfg.outliers.percentile == 95.0
    assert [rule.label for rule in cfg.labels.rules] == [
        "Senior / Retired",
        "Established Professionals",
        "Family-Oriented",
        "Early Career Adults",
    ]


def test_the_default_gates_mean_the_same_at_any_number_of_features_and_the_reference_keeps_its_own() -> None:
    gates = SegmentationConfig().gates
    assert (gates.max_quantization_error, gates.max_relative_quantization_error) == (None, 0.8)
    assert gates.max_topographic_error == 0.1 and gates.min_explained_variance is None
    reference = load_config(REFERENCE_YAML)
    assert reference.gates.model_dump() == {"max_quantization_error": 0.5, "max_relative_quantization_error": None,
                                            "max_topographic_error": 0.1, "min_explained_variance": None,
                                            "max_dead_neuron_share": None}
    # Besides what it is about (features, labels, suite, gates), the reference recipe uses the defaults.
    about = {"features", "labels", "gates", "quality", "som", "segments"}
    assert reference.model_dump(exclude=about) == SegmentationConfig().model_dump(exclude=about)


def test_features_are_set_once_known_and_checked_again() -> None:
    rules = {"rules": [{"label": "Rich", "when": [{"feature": "Income", "op": ">=", "z": 1.0}]}]}
    cfg = SegmentationConfig.model_validate({"id_column": "CUST_ID", "labels": rules})
    assert cfg.with_features(["Income", "Spend"]).feature_names == ["Income", "Spend"]
    with pytest.raises(ConfigError, match=r"label rules test features that are not in 'features': \['Income'\]"):
        cfg.with_features(["Spend"])
    with pytest.raises(ConfigError, match="cannot also be a feature"):
        cfg.with_features(["CUST_ID", "Spend"])


def test_load_config_none_gives_defaults() -> None:
    assert load_config(None) == SegmentationConfig()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda cfg: setattr(cfg, "id_column", "X"),
        lambda cfg: setattr(cfg.som, "rows", 3),
        lambda cfg: setattr(cfg.gates, "max_quantization_error", 9.0),
    ],
    ids=["top", "som", "gates"],
)
def test_config_is_frozen(mutate) -> None:
    cfg = SegmentationConfig()
    with pytest.raises(ValidationError, match="frozen"):
        mutate(cfg)


@pytest.mark.parametrize(
    "kwargs",
    [{"bogus": 1}, {"som": {"rows": 8, "colz": 8}}, {"gates": {"max_qe": 0.4}}],
    ids=["top", "som", "gates"],
)
def test_extra_keys_rejected(kwargs) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        SegmentationConfig.model_validate(kwargs)


def test_yaml_partial_override_keeps_other_defaults(tmp_path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("som:\n  rows: 5\n  cols: 7\n  iterations: 100\nsegments:\n  k: 3\n", encoding="utf-8")
    cfg = load_config(path)
    assert (cfg.som.rows, cfg.som.cols, cfg.som.iterations, cfg.segments.k) == (5, 7, 100, 3)
    defaults = SegmentationConfig()
    assert cfg.som.sigma == "auto" and cfg.som.seed == 42 and cfg.som.engine == "batch"
    assert cfg.segments.n_init == 20
    assert cfg.gates == defaults.gates
    assert cfg.labels == defaults.labels
    assert cfg.features == defaults.features


def test_yaml_empty_file_gives_defaults(tmp_path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    assert load_config(path) == SegmentationConfig()


def test_yaml_unknown_key_names_the_key(tmp_path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("som:\n  rowz: 5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"som\.rowz") as info:
        load_config(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "text, match",
    [
        ("som: [rows: 1\n", "not valid YAML"),
        ("- a\n- b\n", "must be a mapping"),
        ("som:\n  rows: 0\n", r"som\.rows"),
    ],
    ids=["bad-yaml", "not-mapping", "invalid-value"],
)
def test_yaml_bad_content_is_config_error(tmp_path, text, match) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_missing_config_file_is_config_error(tmp_path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="cannot read config") as info:
        load_config(path)
    assert "nope.yaml" in str(info.value)
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"features": [{"name": "Age"}, {"name": "Age"}], "labels": {"rules": []}}, "features must be unique"),
        ({"id_column": "Age", "features": [{"name": "Age"}]}, "id column 'Age' cannot also be a feature"),
        (
            {"features": [{"name": "Age"}],
             "labels": {"rules": [{"label": "X", "when": [{"feature": "Income", "op": ">", "value": 1}]}]}},
            r"not in 'features': \['Income'\]",
        ),
        ({"som": {"rows": 2, "cols": 2}, "segments": {"k": 5}}, "exceeds the 2x2 map's neurons"),
        ({"features": [{"name": "Age", "min": 10, "max": 5}], "labels": {"rules": []}}, "min 10.0 is above max 5.0"),
    ],
    ids=["duplicate-features", "id-as-feature", "rule-unknown-feature", "k-above-neurons", "min-above-max"],
)
def test_segmentation_config_validators(kwargs, match) -> None:
    with pytest.raises(ValidationError, match=match):
        SegmentationConfig.model_validate(kwargs)


def test_k_equal_to_neurons_is_allowed() -> None:
    cfg = SegmentationConfig.model_validate({"som": {"rows": 2, "cols": 2}, "segments": {"k": 4}})
    assert cfg.segments.k == 4


def test_duplicate_labels_rejected() -> None:
    rule = {"label": "Same", "when": [{"feature": "Age", "op": ">", "value": 1}]}
    with pytest.raises(ValidationError, match=r"repeated: \['Same'\]"):
        LabelsConfig.model_validate({"rules": [rule, rule]})


@pytest.mark.parametrize(
    "kwargs",
    [{"value": 1.0, "z": 1.0}, {}],
    ids=["both", "neither"],
)
def test_condition_needs_exactly_one_threshold(kwargs) -> None:
    with pytest.raises(ValidationError, match="exactly one of 'value' or 'z'"):
        Condition(feature="Age", op=">", **kwargs)


@pytest.mark.parametrize("kwargs", [{"value": 50.0}, {"z": -0.5}])
def test_condition_with_one_threshold_is_valid(kwargs) -> None:
    cond = Condition(feature="Age", op="<=", **kwargs)
    assert (cond.value, cond.z) == (kwargs.get("value"), kwargs.get("z"))


def test_label_rule_needs_a_condition() -> None:
    with pytest.raises(ValidationError):
        LabelRule(label="X", when=[])


def test_som_config_bounds() -> None:
    with pytest.raises(ValidationError):
        SomConfig(sigma=0)
    with pytest.raises(ValidationError):
        SomConfig(engine="other")


def test_segments_method_choices() -> None:
    from somseg.config import SegmentsConfig

    assert SegmentsConfig().method == "kmeans"
    assert SegmentsConfig(method="ward").method == "ward"
    with pytest.raises(ValidationError):
        SegmentsConfig(method="dbscan")


def test_evaluation_k_range_must_be_ordered() -> None:
    from somseg.config import EvaluationConfig

    assert (EvaluationConfig().k_min, EvaluationConfig().k_max) == (2, 8)
    with pytest.raises(ValidationError, match="k_min=6 is above evaluation.k_max=5"):
        EvaluationConfig(k_min=6, k_max=5)


def test_load_scoring_config(tmp_path) -> None:
    from somseg.config import ScoringConfig, load_scoring_config

    assert load_scoring_config(None) == ScoringConfig()
    path = tmp_path / "score.yaml"
    path.write_text("drift:\n  action: fail\n", encoding="utf-8")
    cfg = load_scoring_config(path)
    assert cfg.drift.action == "fail"
    assert cfg.drift.max_feature_psi == 0.25 and cfg.execution.partition_rows == 1_000_000
    path.write_text("drift:\n  actoin: fail\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"drift\.actoin"):
        load_scoring_config(path)


def test_the_execution_mode_chooses_nothing_but_where_tasks_run() -> None:
    from somseg.config import ExecutionConfig

    # Any engine runs in either mode: MiniSom gathers the table into one task in both.
    local = SegmentationConfig()
    on_dask = SegmentationConfig(execution=ExecutionConfig(mode="dask"))
    assert local.model_dump(exclude={"execution"}) == on_dask.model_dump(exclude={"execution"})
    assert ExecutionConfig().partition_rows == ExecutionConfig(mode="dask").partition_rows
    with pytest.raises(ValidationError):
        ExecutionConfig(mode="spark")
    with pytest.raises(ValidationError):
        ExecutionConfig(threads=0)


def test_the_grid_is_auto_or_numbers_on_both_sides() -> None:
    with pytest.raises(ValidationError, match="both 'auto' or both numbers"):
        SomConfig(rows=5)
    with pytest.raises(ValidationError, match=r"som.cols must be between 1 and 500, got 0"):
        SomConfig(rows=5, cols=0)
    assert SomConfig(rows=5, cols=7).grid_is_auto is False and SomConfig().grid_is_auto is True


def test_a_suite_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "config.yaml").write_text("quality: {suite: suites/mine.json}\n", encoding="utf-8")
    (tmp_path / "other.yaml").write_text("quality: {suite: customers}\n", encoding="utf-8")

    assert load_config(tmp_path / "project" / "config.yaml").quality.suite == str(tmp_path / "project" / "suites" / "mine.json")
    assert load_config(tmp_path / "other.yaml").quality.suite == "customers", "a shipped suite's name stays a name"


def test_ordinal_and_categorical_features_give_the_model_columns() -> None:
    config = SegmentationConfig.model_validate({"features": [
        {"name": "Age"},
        {"name": "Spending_Score", "kind": "ordinal", "categories": ["Low", "Average", "High"]},
        {"name": "Profession", "kind": "categorical", "categories": ["Artist", "Doctor"]},
    ]})
    assert config.feature_names == ["Age", "Spending_Score", "Profession=Artist", "Profession=Doctor"]
    assert config.encodings == {"Spending_Score": ("ordinal", ("Low", "Average", "High")),
                                "Profession": ("categorical", ("Artist", "Doctor"))}
    assert config.level_names == {"Profession=Artist": "Profession: Artist", "Profession=Doctor": "Profession: Doctor"}
    learnt = SegmentationConfig.model_validate({"features": [{"name": "Profession", "kind": "categorical"}]})
    assert not learnt.categories_known
    assert learnt.with_categories({"Profession": ["B", "A"]}).feature_names == ["Profession=B", "Profession=A"]


@pytest.mark.parametrize(("feature", "message"), [
    ({"name": "S", "kind": "ordinal"}, "an ordinal feature needs its categories, lowest first"),
    ({"name": "S", "kind": "categorical", "min": 0, "transform": "log1p"}, "takes no min, transform"),
    ({"name": "S", "categories": ["a"]}, "categories are for kind 'ordinal' or 'categorical'"),
    ({"name": "S", "kind": "ordinal", "categories": ["a", "a "]}, "must be distinct"),
])
def test_coded_features_are_checked_when_the_config_is_read(feature: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_config({"features": [feature]}, "config test.yaml")


def test_invalid_rows_fail_by_default_and_drop_at_most_one_percent() -> None:
    from somseg.config import QualityConfig

    assert (QualityConfig().invalid_rows, QualityConfig().max_invalid_share) == ("fail", 0.01)
    with pytest.raises(ValidationError, match="invalid_rows"):
        QualityConfig(invalid_rows="skip")
    with pytest.raises(ValidationError, match="max_invalid_share"):
        QualityConfig(max_invalid_share=1.5)


def test_scoring_treats_invalid_rows_as_the_model_was_trained_unless_told_otherwise() -> None:
    from somseg.config import ScoringQualityConfig

    trained = SegmentationConfig.model_validate({"quality": {"invalid_rows": "drop", "max_invalid_share": 0.05}})
    training = trained.model_dump(mode="json")

    inherited = ScoringQualityConfig().resolve(training)
    assert (inherited.invalid_rows, inherited.max_invalid_share) == ("drop", 0.05)
    override = ScoringQualityConfig(invalid_rows="fail").resolve(training)
    assert (override.invalid_rows, override.max_invalid_share) == ("fail", 0.05)
    older = ScoringQualityConfig(max_invalid_share=0.2).resolve({"quality": {"suite": "auto"}})  # a bundle from before the setting
    assert (older.invalid_rows, older.max_invalid_share) == ("fail", 0.2)
