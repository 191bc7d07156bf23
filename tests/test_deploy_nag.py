"""cdk-nag (AwsSolutions + NIST 800-53 R5) over every stack, for example_config.yaml and for a minimal config.

Each config is synthesized once per session (both packs attached). Every error must be fixed or suppressed next to
its construct with a reason (gpu_stack/suppressions.py; the list is in docs/deploy.md). Counts per pack and stack:
`python -m gpu_stack.nag --config <file> [--list]`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
pytest.importorskip("cdk_nag")

from chalicelib import aws
from chalicelib.config import load_config
from gpu_stack.app import PROJECT_DIR
from gpu_stack.nag import PACKS, nag_findings

# The least a deployment needs: no models, no RAG database, no custom domain (a `dev` stage).
MINIMAL_CONFIG = {"deploymentName": "lisa", "s3BucketModels": "lisa-models", "authConfig": {"adminGroup": "admins"}}


@pytest.fixture(scope="module", params=["example", "minimal"])
def findings(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    """The config's name and its unsuppressed cdk-nag errors, from one synth of all its stacks."""
    base = tmp_path_factory.mktemp(f"nag-{request.param}")
    if request.param == "example":
        config_path = PROJECT_DIR / "example_config.yaml"
    else:
        config_path = base / "config.yaml"
        config_path.write_text(yaml.safe_dump(MINIMAL_CONFIG))
    try:
        found = nag_findings(load_config(config_path), config_dir=config_path.parent, outdir=str(base / "cdk.out"))
    finally:
        aws.reset()  # settings read meanwhile named the synthesized deployment's resources
    return request.param, sorted(str(f) for f in found)


def test_every_stack_passes_both_packs(findings: tuple[str, list[str]]) -> None:
    name, found = findings
    assert not found, f"{len(found)} unsuppressed cdk-nag errors ({', '.join(PACKS)}) for the {name} config:\n" + (
        "\n".join(found)
    )


def test_the_packs_do_report_an_unsuppressed_error(tmp_path: Path) -> None:
    """The harness itself: an unsuppressed public, unlogged bucket in a stack is reported by both packs."""
    import aws_cdk as cdk
    import cdk_nag
    from aws_cdk import aws_s3 as s3

    from gpu_stack.nag import collect_errors

    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "probe")
    s3.Bucket(stack, "Plain")
    cdk.Aspects.of(stack).add(cdk_nag.AwsSolutionsChecks())
    cdk.Aspects.of(stack).add(cdk_nag.NIST80053R5Checks())
    rules = {f.rule for f in collect_errors(app.synth())}
    assert {"AwsSolutions-S1", "NIST.800.53.R5-S3BucketLoggingEnabled"} <= rules
