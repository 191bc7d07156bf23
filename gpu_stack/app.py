"""The CDK app: `python -m gpu_stack.app [--config config.yaml] [--outdir cdk.out]` (also what cdk.json runs).

Stacks (each deployable alone, in this order of dependence): `<prefix>-network`, `<prefix>-data`,
`<prefix>-models`, `<prefix>-router`, `<prefix>-api`, where `<prefix>` is `<deploymentName>-<stage>`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam

from chalicelib.config import LisaConfig, load_config
from gpu_stack.functions import app_functions, state_machine_stems
from gpu_stack.managed import convert_inline_policies
from gpu_stack.names import STACKS, ResourceNames, resource_names
from gpu_stack.stacks.api import ApiStack
from gpu_stack.stacks.data import DataStack
from gpu_stack.stacks.models import ModelsStack
from gpu_stack.stacks.network import NetworkStack
from gpu_stack.stacks.router import RouterStack

PROJECT_DIR = Path(__file__).resolve().parent.parent


@dataclass
class LisaApp:
    """The app and its stacks, for `synth()` and for tests."""

    app: cdk.App
    names: ResourceNames
    network: NetworkStack
    data: DataStack
    models: ModelsStack
    router: RouterStack
    api: ApiStack

    @property
    def stacks(self) -> list[cdk.Stack]:
        """Every stack, in deployment order (the ones later in the list depend on earlier ones)."""
        return [self.network, self.data, self.models, self.router, self.api]


def build_app(
    config: LisaConfig,
    *,
    config_dir: Path = PROJECT_DIR,
    project_dir: Path = PROJECT_DIR,
    outdir: str | None = None,
) -> LisaApp:
    """Every stack of the deployment `config` describes."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
    os.environ.setdefault("AWS_DEFAULT_REGION", config.region)  # chalice packaging wants a region; nothing is called
    names = resource_names(config, state_machine_stems(project_dir / "stepfunctions"))
    # The app reads its queue name at import; make an import in this process see this deployment's names.
    for key, value in names.environment({}).items():
        os.environ.setdefault(key, value)
    app = cdk.App(outdir=outdir) if outdir else cdk.App()
    # Account-agnostic (the CLI's credentials choose it): availability zones stay `Fn::GetAZs`, no context lookup.
    env = cdk.Environment(region=config.region)
    prefix = names.prefix
    retain = config.stage == "prod"

    network = NetworkStack(app, f"{prefix}-network", config=config, env=env)
    data = DataStack(
        app,
        f"{prefix}-data",
        names=names,
        retain=retain,
        vpc=network.vpc,
        rag_database=config.rag_database,
        kms_keys=config.kms_keys,
        roles=config.roles,
        security_groups=config.security_groups,
        env=env,
    )
    models = ModelsStack(
        app,
        f"{prefix}-models",
        config=config,
        vpc=network.vpc,
        models_bucket=data.models_bucket,
        access_logs=data.access_logs_bucket,
        config_dir=config_dir,
        names=names,
        keys=data.keys,
        env=env,
    )
    # The groups whose members may call the model endpoints and the RAG database: the router and the Lambdas join.
    clients = [models.clients, *([data.database_clients] if data.database_clients else [])]
    router = RouterStack(
        app,
        f"{prefix}-router",
        config=config,
        names=names,
        vpc=network.vpc,
        keys=data.keys,
        client_groups=clients,
        project_dir=project_dir,
        config_dir=config_dir,
        env=env,
    )
    api = ApiStack(
        app,
        f"{prefix}-api",
        config=config,
        # the lifecycle Lambdas' ECS permissions name the models cluster
        names=dataclasses.replace(names, model_cluster=models.cluster.cluster_name),
        runtime_models=models.runtime,
        project_dir=project_dir,
        config_dir=config_dir,
        functions=app_functions(project_dir),
        data=data,
        vpc=network.vpc,
        client_groups=clients,
        router_endpoint=(router.vpc_link.vpc_link_id, router.load_balancer.load_balancer_dns_name),
        env=env,
    )
    router.add_stack_dependency(data)  # its tables and keys, by name (with the account's keys no reference says so)
    api.add_stack_dependency(router)
    assert [s.stack_name for s in (network, data, models, router, api)] == [f"{prefix}-{s}" for s, _ in STACKS]
    for stack in (network, data, models, router, api):
        if config.permissions_boundary:  # every role, CDK's and Chalice's included (an aspect, applied at synth)
            boundary = iam.ManagedPolicy.from_managed_policy_arn(
                stack, "PermissionsBoundary", config.permissions_boundary
            )
            iam.PermissionsBoundary.of(stack).apply(boundary)
        cdk.Tags.of(stack).add("lisa:deployment", config.deployment_name)
        cdk.Tags.of(stack).add("lisa:stage", config.stage)
        if config.convert_inline_policies_to_managed:  # last: every policy and its suppressions exist now
            convert_inline_policies(stack)
    return LisaApp(app, names, network, data, models, router, api)


def main(argv: list[str] | None = None) -> None:
    """Synthesize the templates (`cdk synth` calls this through cdk.json)."""
    parser = argparse.ArgumentParser(description="Synthesize LISA's CloudFormation templates.")
    parser.add_argument("--config", default=os.environ.get("LISA_CONFIG", str(PROJECT_DIR / "config.yaml")))
    parser.add_argument("--outdir", default=os.environ.get("CDK_OUTDIR"))
    args = parser.parse_args(argv)
    config_path = Path(args.config).resolve()
    config = load_config(config_path)
    built = build_app(config, config_dir=config_path.parent, outdir=args.outdir)
    built.app.synth()


if __name__ == "__main__":
    main()
