"""cdk-nag over the app's stacks: the AwsSolutions and NIST 800-53 R5 packs a locked-down account's review runs.

`nag_findings(config)` synthesizes every stack once with both packs attached and returns the unsuppressed errors;
`python -m gpu_stack.nag [--config config.yaml]` prints their counts per pack and stack (docs/deploy.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
import cdk_nag
from aws_cdk import cx_api

from chalicelib.config import LisaConfig, load_config
from gpu_stack.app import PROJECT_DIR, build_app

# cdk-nag's rule ids start with the pack's name: "AwsSolutions-IAM5", "NIST.800.53.R5-IAMNoInlinePolicy".
PACKS = ("AwsSolutions", "NIST.800.53.R5")


@dataclass(frozen=True)
class NagFinding:
    """One unsuppressed error: the stack, the construct path, the rule and (for IAM5-like rules) what it flags."""

    stack: str
    path: str
    rule: str
    finding: str

    @property
    def pack(self) -> str:
        """The rule pack the finding's rule belongs to (its id's prefix)."""
        return next(p for p in PACKS if self.rule.startswith(p + "-"))

    def __str__(self) -> str:
        suffix = f"[{self.finding}]" if self.finding else ""
        return f"{self.path}: {self.rule}{suffix}"


def _parse(stack: str, path: str, data: str) -> NagFinding:
    # cdk-nag's message: "<rule>[<finding>]: <explanation> ..." with the finding part optional.
    head = data.split(": ", 1)[0]
    rule, _, finding = head.partition("[")
    return NagFinding(stack=stack, path=path, rule=rule, finding=finding.rstrip("]"))


def nag_findings(config: LisaConfig, *, config_dir: Path = PROJECT_DIR, outdir: str) -> list[NagFinding]:
    """Every unsuppressed cdk-nag error of both packs over every stack `config` describes (one synth)."""
    saved = dict(os.environ)  # build_app exports the deployment's LISA_* names for the in-process Chalice import
    try:
        built = build_app(config, config_dir=config_dir, outdir=outdir)
        for stack in built.stacks:
            cdk.Aspects.of(stack).add(cdk_nag.AwsSolutionsChecks())
            cdk.Aspects.of(stack).add(cdk_nag.NIST80053R5Checks())
        assembly = built.app.synth()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return collect_errors(assembly)


def collect_errors(assembly: cx_api.CloudAssembly) -> list[NagFinding]:
    """The cdk-nag errors (unsuppressed, both packs) an assembly's stacks carry as synthesis messages."""
    findings = []
    for artifact in assembly.stacks:
        for message in artifact.messages:
            if message.level != cx_api.SynthesisMessageLevel.ERROR:
                continue
            data = str(message.entry.data)
            if data.startswith(PACKS):
                findings.append(_parse(artifact.stack_name, message.id, data))
    return findings


def counts(findings: list[NagFinding]) -> Counter[tuple[str, str]]:
    """Errors per (stack, pack)."""
    return Counter((f.stack, f.pack) for f in findings)


def main(argv: list[str] | None = None) -> None:
    """`python -m gpu_stack.nag`: the error counts per stack and pack, or every finding, for a config."""
    parser = argparse.ArgumentParser(description="Count cdk-nag errors per pack and stack.")
    parser.add_argument("--config", default=str(PROJECT_DIR / "config.yaml"))
    parser.add_argument("--list", action="store_true", help="print every finding, sorted, instead of the counts")
    args = parser.parse_args(argv)
    config_path = Path(args.config).resolve()
    with tempfile.TemporaryDirectory() as outdir, contextlib.redirect_stdout(sys.stderr):  # chalice's packaging talk
        findings = nag_findings(load_config(config_path), config_dir=config_path.parent, outdir=outdir)
    if args.list:
        print("\n".join(sorted(map(str, findings))))
        return
    for (stack, pack), n in sorted(counts(findings).items()):
        print(f"{stack}\t{pack}\t{n}")
    print(f"total\t{len(findings)}")


if __name__ == "__main__":
    main()
