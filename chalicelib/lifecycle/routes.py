"""The model lifecycle workflow's Lambda task functions (stepfunctions/model_lifecycle.json). Thin: the logic
is in `tasks`, which (with boto3 and pydantic) loads on first use, not at cold start. The API routes are the
registry's (/models POST, PUT, DELETE start the workflow for hosted models)."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint

from chalicelib.lifecycle import FUNCTIONS

lifecycle_bp = Blueprint(__name__)


@lifecycle_bp.lambda_function(name=FUNCTIONS["ValidateFunctionArn"])
def model_lifecycle_validate(event: dict[str, Any], context: Any) -> Any:
    """Validate (tasks.validate)."""
    from chalicelib.lifecycle import tasks

    return tasks.validate(event)


@lifecycle_bp.lambda_function(name=FUNCTIONS["StageWeightsFunctionArn"])
def model_lifecycle_stage_weights(event: dict[str, Any], context: Any) -> Any:
    """StageWeights (tasks.stage_weights)."""
    from chalicelib.lifecycle import tasks

    return tasks.stage_weights(event)


@lifecycle_bp.lambda_function(name=FUNCTIONS["CheckStagingFunctionArn"])
def model_lifecycle_check_staging(event: dict[str, Any], context: Any) -> Any:
    """CheckStaging (tasks.check_staging)."""
    from chalicelib.lifecycle import tasks

    return tasks.check_staging(event)


@lifecycle_bp.lambda_function(name=FUNCTIONS["EnsureInfrastructureFunctionArn"])
def model_lifecycle_ensure_infrastructure(event: dict[str, Any], context: Any) -> Any:
    """CreateInfrastructure and ApplyUpdate (tasks.ensure_infrastructure)."""
    from chalicelib.lifecycle import tasks

    return tasks.ensure_infrastructure(event)


@lifecycle_bp.lambda_function(name=FUNCTIONS["CheckHealthFunctionArn"])
def model_lifecycle_check_health(event: dict[str, Any], context: Any) -> Any:
    """CheckHealth (step WaitHealthy) (tasks.check_health)."""
    from chalicelib.lifecycle import tasks

    return tasks.check_health(event)


@lifecycle_bp.lambda_function(name=FUNCTIONS["DrainFunctionArn"])
def model_lifecycle_drain(event: dict[str, Any], context: Any) -> Any:
    """Drain (tasks.drain)."""
    from chalicelib.lifecycle import tasks

    return tasks.drain(event)


@lifecycle_bp.lambda_function(name=FUNCTIONS["RemoveInfrastructureFunctionArn"])
def model_lifecycle_remove_infrastructure(event: dict[str, Any], context: Any) -> Any:
    """RemoveInfrastructure (tasks.remove_infrastructure)."""
    from chalicelib.lifecycle import tasks

    return tasks.remove_infrastructure(event)


@lifecycle_bp.lambda_function(name=FUNCTIONS["FinishFunctionArn"])
def model_lifecycle_finish(event: dict[str, Any], context: Any) -> Any:
    """Finish (tasks.finish)."""
    from chalicelib.lifecycle import tasks

    return tasks.finish(event)


@lifecycle_bp.lambda_function(name=FUNCTIONS["RollBackFunctionArn"])
def model_lifecycle_roll_back(event: dict[str, Any], context: Any) -> Any:
    """RollBack (tasks.roll_back)."""
    from chalicelib.lifecycle import tasks

    return tasks.roll_back(event)


@lifecycle_bp.lambda_function(name=FUNCTIONS["ClaimScheduleFunctionArn"])
def model_lifecycle_claim_schedule(event: dict[str, Any], context: Any) -> Any:
    """ClaimSchedule: a fired schedule becomes an update (scheduled.claim_schedule)."""
    from chalicelib.lifecycle import scheduled

    return scheduled.claim_schedule(event)
