"""Fires model schedules locally, in EventBridge Scheduler's place (local-only, never deployed): moto stores the
schedules `chalicelib.schedules` makes but never fires them.

Each tick reads the stored schedules (moto's, the very ones AWS would fire), works out with
`chalicelib.schedules.timing` (EventBridge's daylight-saving rules) which transitions fell due since the last tick,
and hands each to the callback once, in time order, as the `ScheduledAction` EventBridge would deliver (the
integrator wires the callback to the model update workflow). The clock is injected; tests drive `tick()` directly.

Exactly once, also across restarts: a journal file records, per schedule, the last transition fired, and a tick
fires only what lies after it. A transition whose callback raised is not recorded and is tried again at the next
tick (later ones of the same model wait behind it, so a model's starts and stops keep their order).

Bounded catch-up: a transition is fired only within `catch_up` (default one hour) of its instant. After a longer
outage (the runner stopped, a laptop asleep) the older transitions are skipped and logged as missed, rather than
replaying a night of starts and stops; AWS does the same beyond its retry policy's maximum event age. A schedule
fires nothing from before its last change (`LastModificationDate`), as in AWS. A crash between the callback's
return and the journal write can repeat that one transition on restart: the update workflow treats a repeated
(modelId, action, scheduledTime) as done, as it must for EventBridge's at-least-once delivery anyway.

    firing = ScheduleFiring(fire=start_update_workflow, journal=state_dir / "schedule-firing.json")
    firing.start(); ...; firing.stop()      # a background thread ticking every `interval` seconds

`LocalScheduler` is what `make run` (runner/stack.py) starts: it points the model schedules' target at the local
lifecycle state machine (LISA_SCHEDULE_TARGET_ARN, _ROLE_ARN, as the stack sets them in AWS) and fires through
`start_update_workflow`, which starts that state machine with the `ScheduledAction`, as EventBridge does.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.contracts.schedules import ScheduledAction
from chalicelib.schedules.eventbridge import ScheduleTarget, StoredSchedule, model_key, stored_schedules
from chalicelib.schedules.timing import Firing, firings_between
from runner.environment import EnvironmentChanges

logger = Logger(service="lisa-schedule-firing")

Fire = Callable[[ScheduledAction], None]
Clock = Callable[[], datetime]
Source = Callable[[], Iterable[StoredSchedule]]
CATCH_UP = timedelta(hours=1)


def utc_now() -> datetime:
    """The real clock (the default)."""
    return datetime.now(UTC)


class FiringJournal:
    """The last transition fired per schedule (by ARN), kept in a JSON file when given one (else in memory)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._fired: dict[str, datetime] = {}
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text())
                self._fired = {arn: datetime.fromisoformat(at) for arn, at in data["fired"].items()}
            except (ValueError, KeyError, TypeError, AttributeError):
                logger.warning("schedule firing journal unreadable: starting afresh", extra={"path": str(path)})

    def last(self, arn: str) -> datetime | None:
        """The instant of the last transition fired (or given up) for the schedule, if any."""
        return self._fired.get(arn)

    def record(self, arn: str, at: datetime) -> None:
        """Remember `at` as the schedule's last transition; written to disk before returning."""
        self._fired[arn] = at.astimezone(UTC)
        self._save()

    def keep_only(self, arns: set[str]) -> None:
        """Forget schedules that no longer exist."""
        if set(self._fired) - arns:
            self._fired = {arn: at for arn, at in self._fired.items() if arn in arns}
            self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"fired": {arn: at.isoformat() for arn, at in sorted(self._fired.items())}}, indent=1)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(temporary, self.path)  # atomic: a crash leaves the old journal or the new one


@dataclass
class TickReport:
    """What one tick did: transitions fired, failed (to be retried), and missed (older than the catch-up)."""

    fired: list[ScheduledAction] = field(default_factory=list)
    failed: list[ScheduledAction] = field(default_factory=list)
    missed: list[ScheduledAction] = field(default_factory=list)


@dataclass(frozen=True)
class _Due:
    firing: Firing
    schedule: StoredSchedule
    action: ScheduledAction


class ScheduleFiring:
    """Fires due schedule transitions through `fire`, each once (see the module's docstring for the rules)."""

    def __init__(
        self,
        fire: Fire,
        *,
        source: Source | None = None,
        clock: Clock = utc_now,
        journal: Path | FiringJournal | None = None,
        catch_up: timedelta = CATCH_UP,
        interval: float = 15.0,
    ) -> None:
        if catch_up <= timedelta(0):
            raise ValueError("catch_up must be positive")
        self.fire = fire
        self.source: Source = source or stored_schedules
        self.clock = clock
        self.journal = journal if isinstance(journal, FiringJournal) else FiringJournal(journal)
        self.catch_up = catch_up
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> TickReport:
        """Fire every transition due now; returns what was fired, failed and missed."""
        now = self.clock().astimezone(UTC)
        report = TickReport()
        try:
            schedules = [s for s in self.source() if s.enabled]
        except Exception:  # moto unreachable for a moment: the next tick tries again, nothing is lost
            logger.exception("cannot read the stored schedules")
            return report
        self.journal.keep_only({s.arn for s in schedules})
        due: list[_Due] = []
        for schedule in schedules:
            due.extend(self._due(schedule, now, report))
        blocked: set[str] = set()  # models whose earlier transition failed this tick
        for item in sorted(due, key=lambda d: (d.firing.at, d.schedule.name)):
            if item.action.model_id in blocked:
                continue
            try:
                self.fire(item.action)
            except Exception:
                logger.exception("schedule firing failed; retried next tick", extra={"schedule": item.schedule.name})
                blocked.add(item.action.model_id)
                report.failed.append(item.action)
                continue
            self.journal.record(item.schedule.arn, item.firing.at)
            report.fired.append(item.action)
        return report

    def _due(self, schedule: StoredSchedule, now: datetime, report: TickReport) -> list[_Due]:
        """The schedule's transitions not yet fired up to `now`; those past the catch-up go to `report.missed`."""
        try:
            transitions = schedule.transitions()
        except ValueError as error:  # a schedule LISA did not make: not ours to fire
            logger.warning(str(error))
            return []
        horizon = now - self.catch_up
        last = self.journal.last(schedule.arn)
        # Never before the schedule's last change; without a journal entry (a new journal), nothing past the horizon
        # is known to be missed; with one, what lies between it and the horizon was missed while the runner was down.
        since = max(last, schedule.modified) if last is not None else max(horizon, schedule.modified)
        firings = firings_between(transitions, schedule.timezone, since, now)
        missed = [schedule.action_at(f.at) for f in firings if f.at <= horizon]
        if missed:
            report.missed.extend(missed)
            self.journal.record(schedule.arn, missed[-1].scheduled_time)  # given up on: never fired later
            logger.warning(
                "schedule transitions missed (the runner was not running)",
                extra={"schedule": schedule.name, "count": len(missed), "last": missed[-1].scheduled_time.isoformat()},
            )
        return [_Due(f, schedule, schedule.action_at(f.at)) for f in firings if f.at > horizon]

    def start(self) -> ScheduleFiring:
        """Tick now and then every `interval` seconds in a background thread, until `stop()`."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="lisa-schedule-firing", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:  # the journal's disk, or a bug: keep the thread alive, say so
                logger.exception("schedule firing tick failed")
            if self._stop.wait(self.interval):
                return

    def stop(self) -> None:
        """Stop the background thread (after the tick in progress, if any)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None


def start_update_workflow(action: ScheduledAction) -> None:
    """What EventBridge Scheduler does when a model's schedule fires: start its target (the lifecycle state machine)
    with the `ScheduledAction`. The execution is named after the transition, so a repeated firing starts nothing."""
    target = ScheduleTarget.from_settings()
    name = f"{model_key(action.model_id)}-{action.action}-{int(action.scheduled_time.timestamp())}"
    try:
        aws.client("stepfunctions").start_execution(
            stateMachineArn=target.arn, name=name, input=json.dumps(action.wire())
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
            raise
    logger.info("schedule fired", extra={"model_id": action.model_id, "action": action.action, "execution": name})


LOCAL_SCHEDULER_ROLE = "arn:aws:iam::123456789012:role/lisa-local-model-schedules"


@dataclass
class LocalScheduler:
    """EventBridge Scheduler's part locally: the schedules' target settings and the firing thread (`clock` injected:
    a test or a demo can run the day faster)."""

    state_dir: Path
    clock: Clock = utc_now
    interval: float = 15.0
    firing: ScheduleFiring | None = None
    _env: EnvironmentChanges = field(default_factory=EnvironmentChanges)

    def start(self) -> LocalScheduler:
        """Point the schedules at the lifecycle state machine (LISA_MODEL_LIFECYCLE_STATE_MACHINE_ARN) and fire."""
        target = os.environ.get("LISA_MODEL_LIFECYCLE_STATE_MACHINE_ARN")
        if not target:
            raise RuntimeError(
                "model schedules need the lifecycle state machine (LISA_MODEL_LIFECYCLE_STATE_MACHINE_ARN)"
            )
        self._env.set("LISA_SCHEDULE_TARGET_ARN", target)
        self._env.set("LISA_SCHEDULE_ROLE_ARN", LOCAL_SCHEDULER_ROLE)
        aws.reset()
        journal = self.state_dir / "schedule-firing.json"
        self.firing = ScheduleFiring(start_update_workflow, clock=self.clock, journal=journal, interval=self.interval)
        self.firing.start()
        return self

    def stop(self) -> None:
        """Stop firing; the settings back as they were. Safe to call twice."""
        if self.firing is not None:
            self.firing.stop()
            self.firing = None
        self._env.restore()
        aws.reset()
