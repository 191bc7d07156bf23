"""The GPU inference tier: an ECS cluster with GPU capacity (one Auto Scaling group per instance type, ECS
GPU-optimized AMI) and one service per `ecsModels` entry with `deploy: true`, each behind its own internal ALB.
The containers of a model's task come from chalicelib.lifecycle.infra, which the lifecycle workflows use for
models created at run time: one description of a model's service for both.

A task first fetches the model's weights from `s3://<models bucket>/<org>/<name>/` into a task volume (an init
container with the AWS CLI): only the files `lisa-manifest.json` lists (staging writes it last, so a prefix
without it is a missing or failed staging and the task stops with that message), each checked against its
sha256. Then it starts the inference container on them: vLLM's OpenAI server (`python3 -m
vllm.entrypoints.openai.api_server`, arguments from chalicelib.vllm_engine, as the local runner starts it) with
one GPU per tensor-parallel rank, or TGI/TEI with one GPU. The fetch image is the CDK context value
`weightsImage` (any form `containerConfig.image` takes: ECR repo:tag, registry path, local dir or tarball), for
VPCs that cannot pull from public.ecr.aws.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from chalicelib.config import EcsModel, LisaConfig
from chalicelib.lifecycle.infra import CONTAINER_PORT, FETCH_SCRIPT, LISTENER_PORTS, MODEL_DIR, WEIGHTS_IMAGE, engine
from chalicelib.staging.layout import MANIFEST
from gpu_stack.ca_bundle import add_ca_bundle, read_ca_bundle
from gpu_stack.images import container_image
from gpu_stack.keys import container_log_group
from gpu_stack.names import ResourceNames
from gpu_stack.overrides import imported_role, imported_security_group, role_or, security_group_or
from gpu_stack.policies import ArnParts, StoreKeys, bucket_key_statement
from gpu_stack.runtime_models import RuntimeModels, runtime_roles
from gpu_stack.suppressions import (
    DEV_DELETION_REASON,
    INTERNAL_ALB_REASON,
    TASK_ROLE_INLINE_REASON,
    nag_suppression,
    suppress,
    suppress_gpu_group,
    suppress_task_definition,
)

__all__ = ["FETCH_SCRIPT", "MANIFEST", "WEIGHTS_IMAGE", "ModelsStack", "deployed_models"]

ELB_LOG_PREFIX = "elb"  # the access-log bucket's prefix for the model load balancers


def _id(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def deployed_models(config: LisaConfig) -> list[EcsModel]:
    """The ECS models the config asks to deploy; the others stay registered but get no service."""
    return [model for model in config.ecs_models if model.deploy]


class ModelsStack(cdk.Stack):
    """Exposes `endpoints` (modelName → internal URL of its ALB), `services` (modelName → Ec2Service) and `runtime`
    (what the lifecycle workflow needs for models created at run time)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: LisaConfig,
        vpc: ec2.IVpc,
        models_bucket: s3.IBucket,
        access_logs: s3.IBucket,
        config_dir: Path,
        names: ResourceNames,
        keys: StoreKeys | None = None,
        **kwargs: Any,
    ) -> None:
        """`access_logs` receives the model load balancers' access logs (under `elb/`); `keys` are the data stores'
        (the tasks read their weights under the buckets key)."""
        super().__init__(scope, construct_id, **kwargs)
        self._access_logs = access_logs
        self._keys = keys or StoreKeys()
        models = deployed_models(config)
        self.cluster = ecs.Cluster(self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED)
        self.clients = ec2.SecurityGroup(self, "ModelClients", vpc=vpc, description="may call the model endpoints")
        providers: dict[str, ecs.AsgCapacityProvider] = {}
        for instance_type in sorted({m.instance_type for m in models}):
            members = [m for m in models if m.instance_type == instance_type]
            providers[instance_type] = self._gpu_capacity(
                _id(instance_type),
                instance_type,
                config,
                vpc,
                min_capacity=sum(m.auto_scaling_config.min_capacity for m in members),
                max_capacity=sum(m.auto_scaling_config.max_capacity for m in members),
                warmup=max(m.auto_scaling_config.default_instance_warmup for m in members),
            )
        # Models created at run time (POST /models): capacity, balancer, roles and log group the workflow uses.
        self.runtime = self._runtime_models(config, vpc, models_bucket, names)

        self.endpoints: dict[str, str] = {}
        self.services: dict[str, ecs.Ec2Service] = {}
        if not models:
            return
        context_image = self.node.try_get_context("weightsImage")
        weights = container_image(self, "WeightsImage", str(context_image or WEIGHTS_IMAGE), config_dir)
        for model in models:
            self._service(model, config, vpc, models_bucket, providers[model.instance_type], config_dir, weights)

    def _gpu_capacity(
        self,
        name: str,
        instance_type: str,
        config: LisaConfig,
        vpc: ec2.IVpc,
        *,
        min_capacity: int,
        max_capacity: int,
        warmup: int,
    ) -> ecs.AsgCapacityProvider:
        """One Auto Scaling group of GPU instances (ECS GPU AMI) as a capacity provider of the cluster."""
        group = autoscaling.AutoScalingGroup(
            self,
            f"Gpu{name}",
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
            if config.vpc_config is None
            else ec2.SubnetSelection(subnets=vpc.private_subnets),
            launch_template=ec2.LaunchTemplate(
                self,
                f"Gpu{name}Template",
                instance_type=ec2.InstanceType(instance_type),
                machine_image=ecs.EcsOptimizedImage.amazon_linux2(ecs.AmiHardwareType.GPU),
                security_group=security_group_or(
                    self,
                    f"Gpu{name}SecurityGroup",
                    config.security_groups.gpu_instances,
                    vpc=vpc,
                    description="GPU container instances",
                ),
                role=role_or(
                    self,
                    f"Gpu{name}Role",
                    config.roles.gpu_instances,
                    assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
                ),
                user_data=ec2.UserData.for_linux(),
                require_imdsv2=True,
                block_devices=[
                    ec2.BlockDevice(
                        device_name="/dev/xvda",
                        volume=ec2.BlockDeviceVolume.ebs(200, encrypted=True, volume_type=ec2.EbsDeviceVolumeType.GP3),
                    )
                ],
            ),
            min_capacity=min_capacity,
            max_capacity=max_capacity,
            default_instance_warmup=cdk.Duration.seconds(warmup),
            new_instances_protected_from_scale_in=False,
        )
        provider = ecs.AsgCapacityProvider(
            self,
            f"Capacity{name}",
            auto_scaling_group=group,
            enable_managed_termination_protection=False,
            # ECS drains an instance's tasks before the group terminates it: no CDK drain hook (its Lambda,
            # roles and SNS topic) in the stack.
            enable_managed_draining=True,
        )
        self.cluster.add_asg_capacity_provider(provider)
        suppress_gpu_group(group, self.node.find_child(f"Gpu{name}Role"))
        return provider

    def _balancer(
        self, construct_id: str, config: LisaConfig, vpc: ec2.IVpc, name: str | None = None
    ) -> elbv2.ApplicationLoadBalancer:
        """An internal ALB in the private subnets, logging into the access-log bucket, admitting model clients."""
        balancer = elbv2.ApplicationLoadBalancer(
            self,
            construct_id,
            load_balancer_name=name,
            vpc=vpc,
            internet_facing=False,
            vpc_subnets=ec2.SubnetSelection(subnets=vpc.private_subnets),
            deletion_protection=config.stage == "prod",
            security_group=imported_security_group(
                self, f"{construct_id}SecurityGroup", config.security_groups.model_load_balancers
            ),
        )
        # Every request into the access-log bucket; CDK adds the bucket policy for the region's ELB log delivery.
        balancer.log_access_logs(self._access_logs, ELB_LOG_PREFIX)
        if config.web_acl_arn:
            wafv2.CfnWebACLAssociation(
                self,
                f"{construct_id.removesuffix('Alb')}WebAcl",
                resource_arn=balancer.load_balancer_arn,
                web_acl_arn=config.web_acl_arn,
            )
        else:
            suppress(balancer, nag_suppression("NIST.800.53.R5-ALBWAFEnabled", INTERNAL_ALB_REASON))
        if config.stage != "prod":
            suppress(balancer, nag_suppression("NIST.800.53.R5-ELBDeletionProtectionEnabled", DEV_DELETION_REASON))
        return balancer

    def _runtime_models(
        self, config: LisaConfig, vpc: ec2.IVpc, bucket: s3.IBucket, names: ResourceNames
    ) -> RuntimeModels:
        """The shared resources of run-time models: GPU capacity from zero, the balancer `<prefix>-models` whose
        listeners the workflow adds per model, the tasks' roles (named, so the Lambdas may pass only them) and
        log group. Bridge networking: tasks use their instance's security group, which admits the balancer."""
        capacity = config.model_capacity
        provider = self._gpu_capacity(
            "Runtime",
            capacity.instance_type,
            config,
            vpc,
            min_capacity=0,
            max_capacity=capacity.max_capacity,
            warmup=180,
        )
        balancer = self._balancer("RuntimeAlb", config, vpc, name=names.model_balancer)
        listener_ports = ec2.Port.tcp_range(LISTENER_PORTS.start, LISTENER_PORTS.stop - 1)
        balancer.connections.allow_from(self.clients, listener_ports, "model clients: run-time model listeners")
        provider.auto_scaling_group.connections.allow_from(balancer, ec2.Port.tcp_range(32768, 65535), "ALB")
        log_group = container_log_group(self, "RuntimeLogs", config.kms_keys.logs)
        roles = runtime_roles(self, config, names, bucket, self._keys, log_group)
        context_image = self.node.try_get_context("weightsImage")
        return RuntimeModels(
            cluster=self.cluster,
            provider=provider,
            balancer=balancer,
            log_group=log_group,
            roles=roles,
            vpc_id=vpc.vpc_id,
            weights_image=str(context_image) if context_image else None,
        )

    def _service(
        self,
        model: EcsModel,
        config: LisaConfig,
        vpc: ec2.IVpc,
        bucket: s3.IBucket,
        provider: ecs.AsgCapacityProvider,
        config_dir: Path,
        weights_image: ecs.ContainerImage,
    ) -> None:
        name = _id(model.model_name)
        health = model.health_check_config
        task = ecs.Ec2TaskDefinition(
            self,
            f"{name}Task",
            network_mode=ecs.NetworkMode.BRIDGE,
            task_role=imported_role(self, f"{name}TaskRole", config.roles.model_tasks),
            execution_role=imported_role(self, f"{name}ExecutionRole", config.roles.task_execution),
        )
        task.add_volume(name="weights")
        # The model's own weights only: its objects, and listing under its prefix (a missing file is a 404).
        weights = bucket.arn_for_objects(f"{model.model_id}/*")
        task.add_to_task_role_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[weights]))
        task.add_to_task_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{model.model_id}/*"]}},
            )
        )
        parts = ArnParts(partition=cdk.Aws.PARTITION, region=cdk.Aws.REGION, account=cdk.Aws.ACCOUNT_ID)
        key = bucket_key_statement([bucket.bucket_name], False, parts, self._keys.buckets)
        task.add_to_task_role_policy(iam.PolicyStatement.from_json(key))
        bucket_id = cdk.Stack.of(bucket).get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
        suppress(
            task.task_role,
            nag_suppression(
                "AwsSolutions-IAM5",
                "the objects under this model's own prefix (its weights and manifest)",
                [f"Resource::<{bucket_id}.Arn>/{model.model_id}/*"],
            ),
            nag_suppression("NIST.800.53.R5-IAMNoInlinePolicy", TASK_ROLE_INLINE_REASON),
            children=True,
        )
        log_group = container_log_group(self, f"{name}Logs", config.kms_keys.logs)

        fetch = task.add_container(
            "fetch-weights",
            image=weights_image,
            essential=False,
            memory_reservation_mib=512,
            entry_point=["sh", "-c", FETCH_SCRIPT, "fetch-weights"],
            command=[f"s3://{bucket.bucket_name}/{model.model_id}", MODEL_DIR],
            logging=ecs.LogDriver.aws_logs(stream_prefix="fetch-weights", log_group=log_group),
        )
        fetch.add_mount_points(ecs.MountPoint(container_path="/data", source_volume="weights", read_only=False))

        started = engine(model)
        server = task.add_container(
            "model",
            image=container_image(self, f"{name}Image", model.container_config.image, config_dir),
            essential=True,
            entry_point=started.entry_point,
            command=started.command,
            gpu_count=started.gpus,
            memory_reservation_mib=8192,
            environment=started.environment,
            linux_parameters=ecs.LinuxParameters(
                self, f"{name}Linux", shared_memory_size=model.container_config.shared_memory_size
            ),
            port_mappings=[ecs.PortMapping(container_port=CONTAINER_PORT, host_port=0)],
            health_check=ecs.HealthCheck(
                command=started.probe,
                interval=cdk.Duration.seconds(health.interval),
                timeout=cdk.Duration.seconds(health.timeout),
                retries=health.retries,
                start_period=cdk.Duration.seconds(health.start_period),
            ),
            logging=ecs.LogDriver.aws_logs(stream_prefix=model.model_name, log_group=log_group),
        )
        pem = read_ca_bundle(config, config_dir)
        if pem:  # the weights image's `sh` writes it; the AWS CLI and the engine trust it
            logging = ecs.LogDriver.aws_logs(stream_prefix="ca-bundle", log_group=log_group)
            add_ca_bundle(task, pem, weights_image, logging, [fetch, server])
        suppress_task_definition(task)
        server.add_mount_points(ecs.MountPoint(container_path="/data", source_volume="weights", read_only=False))
        server.add_container_dependencies(
            ecs.ContainerDependency(container=fetch, condition=ecs.ContainerDependencyCondition.SUCCESS)
        )

        scaling_config = model.auto_scaling_config
        service = ecs.Ec2Service(
            self,
            f"{name}Service",
            cluster=self.cluster,
            task_definition=task,
            desired_count=scaling_config.min_capacity,
            min_healthy_percent=0 if scaling_config.max_capacity == 1 else 50,
            max_healthy_percent=200,
            capacity_provider_strategies=[
                ecs.CapacityProviderStrategy(capacity_provider=provider.capacity_provider_name, weight=1)
            ],
            health_check_grace_period=cdk.Duration.seconds(health.start_period),
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
        )

        balancer = self._balancer(f"{name}Alb", config, vpc)
        balancer.connections.allow_from(self.clients, ec2.Port.tcp(80), "model clients")
        listener = balancer.add_listener(f"{name}Listener", port=80, open=False)
        suppress(
            listener,
            nag_suppression("NIST.800.53.R5-ELBv2ACMCertificateRequired", INTERNAL_ALB_REASON),
            nag_suppression("NIST.800.53.R5-ALBHttpToHttpsRedirection", INTERNAL_ALB_REASON),
        )
        target_group = listener.add_targets(
            f"{name}Targets",
            port=CONTAINER_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[service.load_balancer_target(container_name="model", container_port=CONTAINER_PORT)],
            health_check=elbv2.HealthCheck(
                path=health.path,
                port="traffic-port",  # the container's dynamic host port (cfn-lint E3049)
                interval=cdk.Duration.seconds(max(health.interval, health.timeout + 1)),
                timeout=cdk.Duration.seconds(health.timeout),
                healthy_threshold_count=2,
                unhealthy_threshold_count=max(2, health.retries),
            ),
            deregistration_delay=cdk.Duration.seconds(30),
        )
        provider.auto_scaling_group.connections.allow_from(balancer, ec2.Port.tcp_range(32768, 65535), "ALB")
        scaling = service.auto_scale_task_count(
            min_capacity=scaling_config.min_capacity, max_capacity=scaling_config.max_capacity
        )
        scaling.scale_on_request_count(
            f"{name}Requests",
            requests_per_target=scaling_config.target_requests_per_instance,
            target_group=target_group,
            scale_in_cooldown=cdk.Duration.seconds(scaling_config.cooldown),
            scale_out_cooldown=cdk.Duration.seconds(scaling_config.cooldown),
        )
        endpoint = f"http://{balancer.load_balancer_dns_name}"
        # The registry sync (`lisa models sync`) reads the endpoint of each deployed model from here.
        ssm.StringParameter(
            self,
            f"{name}Endpoint",
            parameter_name=f"/{config.deployment_name}/{config.stage}/models/{model.model_name}/endpoint",
            string_value=endpoint,
        )
        cdk.CfnOutput(self, f"{name}EndpointUrl", value=endpoint, description=f"{model.model_name} ({model.provider})")
        self.endpoints[model.model_name] = endpoint
        self.services[model.model_name] = service
