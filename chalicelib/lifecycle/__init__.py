"""Model lifecycle: the Step Functions workflow (`stepfunctions/model_lifecycle.json`) that creates, starts,
stops, rescales, updates and deletes hosted models, and the API side that claims a model and starts it.

Modules: `infra` (what a model's ECS/ELB resources are; pure, shared with the CDK stack), `errors`, `tasks` (the
workflow's Lambda task handlers: every AWS call of the workflow is in one of them), `scheduled` (a fired
schedule's claim), `service` (POST/PUT/DELETE:
claim the record, start the execution), `routes` (the Lambda functions). See docs/lifecycle.md.
"""

from __future__ import annotations

FUNCTIONS: dict[str, str] = {
    "ValidateFunctionArn": "model_lifecycle_validate",
    "StageWeightsFunctionArn": "model_lifecycle_stage_weights",
    "CheckStagingFunctionArn": "model_lifecycle_check_staging",
    "EnsureInfrastructureFunctionArn": "model_lifecycle_ensure_infrastructure",
    "CheckHealthFunctionArn": "model_lifecycle_check_health",
    "DrainFunctionArn": "model_lifecycle_drain",
    "RemoveInfrastructureFunctionArn": "model_lifecycle_remove_infrastructure",
    "FinishFunctionArn": "model_lifecycle_finish",
    "RollBackFunctionArn": "model_lifecycle_roll_back",
    "ClaimScheduleFunctionArn": "model_lifecycle_claim_schedule",
}
"""The ASL's DefinitionSubstitutions key → the Chalice Lambda function name (`lisa-<stage>-<name>` once deployed)."""
