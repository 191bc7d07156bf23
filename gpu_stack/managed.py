"""config.yaml `convertInlinePoliciesToManaged`: every inline IAM policy of a stack becomes a customer-managed one.

Accounts whose guardrails (NIST 800-53 IAMNoInlinePolicy, an SCP) forbid inline policies get the same documents as
`AWS::IAM::ManagedPolicy` resources: a CDK `AWS::IAM::Policy` (a role's DefaultPolicy) becomes a managed policy
attached to the same roles, in the same place in the construct tree (so whatever waited for the policy still does);
a role's own `Policies` (the Chalice functions' roles) move into managed policies listed in its `ManagedPolicyArns`
(so the role, and everything using it, exists only with them). cdk-nag suppressions move along. Run after every
construct and suppression exists (gpu_stack/app.py does, at the end of `build_app`).
"""

from __future__ import annotations

from typing import Any, cast

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

NAG_METADATA = "cdk_nag"


def _copy_suppressions(source: cdk.CfnResource, target: cdk.CfnResource) -> None:
    metadata = source.get_metadata(NAG_METADATA)
    if metadata:
        target.add_metadata(NAG_METADATA, metadata)


def _replace_policy(policy: iam.CfnPolicy) -> None:
    scope = cast(Construct, policy.node.scope)  # a CfnPolicy always has a parent (its Policy, or a stack)
    document: Any = policy.policy_document
    if isinstance(document, iam.PolicyDocument) and document.is_empty:
        return  # CDK renders no resource for it either
    managed = iam.CfnManagedPolicy(
        scope, f"{policy.node.id}Managed", policy_document=document, roles=policy.roles, description=policy.policy_name
    )
    _copy_suppressions(policy, managed)
    scope.node.try_remove_child(policy.node.id)


def _move_role_policies(role: iam.CfnRole) -> None:
    policies = role.policies
    arns = role.managed_policy_arns
    if not isinstance(policies, list) or not policies:
        return
    if arns is not None and not isinstance(arns, list):
        raise ValueError(f"{role.node.path}: its ManagedPolicyArns is a token; cannot add the converted policies")
    scope = cast(Construct, role.node.scope)
    added = []
    for index, entry in enumerate(policies):
        assert isinstance(entry, iam.CfnRole.PolicyProperty)
        managed = iam.CfnManagedPolicy(
            scope,
            f"{role.node.id}Managed{index}",
            policy_document=entry.policy_document,
            description=f"{entry.policy_name} (was inline in {role.node.id})",
        )
        _copy_suppressions(role, managed)
        added.append(managed.ref)
    role.managed_policy_arns = [*(arns or []), *added]
    role.policies = None


def convert_inline_policies(stack: cdk.Stack) -> None:
    """Turn every inline policy of `stack` (AWS::IAM::Policy, a role's Policies) into a managed policy."""
    for construct in list(stack.node.find_all()):
        if isinstance(construct, iam.CfnPolicy):
            _replace_policy(construct)
        elif isinstance(construct, iam.CfnRole):
            _move_role_policies(construct)
