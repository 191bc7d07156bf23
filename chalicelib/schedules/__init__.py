"""Per-model schedules: when a hosted model's GPU service runs, as EventBridge Scheduler schedules that start and
stop it through the model update workflow.

The wire model is `chalicelib.contracts.schedules.ModelSchedule`; `timing` says when transitions fire (pure,
EventBridge's daylight-saving rules), `eventbridge` keeps a model's EventBridge schedules in step with its schedule,
`cron` writes and reads their expressions. Locally, runner/schedule_firing.py fires them, as moto never does.
"""

from chalicelib.schedules.eventbridge import (
    ScheduleTarget,
    delete_model_schedule,
    ensure_schedule_group,
    model_schedule_names,
    stored_schedules,
    sync_model_schedule,
)
from chalicelib.schedules.timing import is_running, next_start, next_stop, schedule_status

__all__ = [
    "ScheduleTarget",
    "delete_model_schedule",
    "ensure_schedule_group",
    "is_running",
    "model_schedule_names",
    "next_start",
    "next_stop",
    "schedule_status",
    "stored_schedules",
    "sync_model_schedule",
]
