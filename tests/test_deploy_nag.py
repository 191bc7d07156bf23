"""cdk-nag (AwsSolutions + NIST 800-53 R5) over every stack, for example_config.yaml and for a minimal config.

Each config is synthesized once per session. A finding fails the test unless it is suppressed next to its
construct (gpu_stack/stacks/*) or listed in the config's baseline (tests/support/nag/<config>.txt), the errors
still to be fixed or suppressed (issue 14): the baseline may only shrink, and a listed finding that no longer
occurs fails too, so the file stays exact. Regenerate it with `python -m gpu_stack.nag --config <file> --list`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
pytest.importorskip("cdk_nag")

from chalicelib import aws  # noqa: E402
from chalicelib.config import load_config  # noqa: E402
from gpu_stack.app import PROJECT_DIR  # noqa: E402
from gpu_stack.nag import nag_findings  # noqa: E402

BASELINES = Path(__file__).parent / "support" / "nag"
# The least a deployment needs: no models, no RAG database, no custom domain (a `dev` stage).
MINIMAL_CONFIG = {"deploymentName": "lisa", "s3BucketModels": "lisa-models", "authConfig": {"adminGroup": "admins"}}


@pytest.fixture(scope="module", params=["example", "minimal"])
def findings(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, set[str]]:
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
    return request.param, {str(f) for f in found}


def test_no_unsuppressed_cdk_nag_error_beyond_the_baseline(findings: tuple[str, set[str]]) -> None:
    name, found = findings
    baseline = set((BASELINES / f"{name}.txt").read_text().splitlines())
    new = sorted(found - baseline)
    assert not new, f"{len(new)} cdk-nag errors for the {name} config; fix or suppress them:\n" + "\n".join(new)
    fixed = sorted(baseline - found)
    assert not fixed, f"no longer reported for the {name} config; remove from its baseline:\n" + "\n".join(fixed)
