"""config.yaml validation: good configs load, bad values name their key path and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chalicelib.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["config.yaml", "example_config.yaml"])
def test_shipped_configs_are_valid(name: str) -> None:
    config = load_config(ROOT / name)
    assert config.ecs_models
    assert {m.provider for m in config.ecs_models} <= {
        "ecs.textgen.vllm",
        "ecs.textgen.tgi",
        "ecs.embedding.tei",
        "ecs.embedding.instructor",
    }


def _example() -> dict:
    return yaml.safe_load((ROOT / "example_config.yaml").read_text())


TGI = 3  # example_config.yaml's TGI model (its limits are TGI's environment names)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c["ecsModels"][0].__setitem__("modelId", "not-a-hf-id"), "ecsModels.0.modelId"),
        (lambda c: c["ecsModels"][1].__setitem__("modelType", "vision"), "ecsModels.1.modelType"),
        (lambda c: c["ecsModels"][TGI].__setitem__("inferenceContainer", "tei"), "cannot serve modelType 'textgen'"),
        (
            lambda c: c["ecsModels"][TGI]["containerConfig"]["environment"].__setitem__("MAX_TOTAL_TOKENS", "lots"),
            "MAX_TOTAL_TOKENS must be a positive integer",
        ),
        (
            lambda c: c["ecsModels"][TGI]["containerConfig"]["environment"].__setitem__("MAX_CONCURRENT_REQUESTS", "0"),
            "MAX_CONCURRENT_REQUESTS must be a positive integer",
        ),
        (  # "²" passes str.isdigit, then int() refuses it
            lambda c: c["ecsModels"][TGI]["containerConfig"]["environment"].__setitem__("MAX_TOTAL_TOKENS", "\u00b2"),
            "MAX_TOTAL_TOKENS must be a positive integer",
        ),
        (
            lambda c: c["ecsModels"][TGI]["containerConfig"]["environment"].__setitem__("MAX_INPUT_LENGTH", 9000),
            "MAX_INPUT_LENGTH must be less than MAX_TOTAL_TOKENS",
        ),
        (lambda c: c["ecsModels"][0]["autoScalingConfig"].__setitem__("minCapacity", 9), "minCapacity must not exceed"),
        (lambda c: c.__setitem__("s3BucketModels", "Bad_Bucket"), "s3BucketModels"),
        (lambda c: c["authConfig"].__setitem__("authority", "http://evil.example"), "authConfig.authority"),
        (lambda c: c["ragRepositories"][0].__setitem__("embeddingModelId", "mistral-7b-instruct"), "not an embedding"),
        (lambda c: c["ragRepositories"][0].__setitem__("chunking", {"size": 100, "overlap": 100}), "overlap"),
        (lambda c: c.__setitem__("unknownKey", 1), "unknownKey"),
        (lambda c: c["ecsModels"].append(dict(c["ecsModels"][0])), "duplicate modelName mistral-7b-instruct"),
        (lambda c: c.__setitem__("ragDatabase", {"instanceType": "huge"}), "ragDatabase.instanceType"),
        (lambda c: c.__setitem__("ragDatabase", {"allocatedStorage": 5}), "ragDatabase.allocatedStorage"),
        (lambda c: c.__setitem__("stagingImage", ""), "stagingImage"),
    ],
)
def test_bad_values_name_the_key_and_reason(mutate, expected: str) -> None:
    config = _example()
    mutate(config)
    with pytest.raises(ConfigError) as error:
        parse_config(config)
    assert expected in str(error.value)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("deploymentName: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- a list")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(bad)
