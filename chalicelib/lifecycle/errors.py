"""Lifecycle failures. A task raises one; its class name is the error the ASL's Retry/Catch match on, its message
the reason recorded on the model (with the step it failed in)."""

from __future__ import annotations

from chalicelib.errors import LisaError, ServiceUnavailable


class LifecycleError(LisaError):
    """A lifecycle step failed for good (retrying will not help)."""


class InvalidSpec(LifecycleError):
    """The model's record does not describe a service this deployment can run."""


class WeightsNotStaged(LifecycleError):
    """The weights are not in the models bucket and staging them failed."""


class EngineFailed(LifecycleError):
    """A task of the model's service stopped by itself (the engine exited, the weights could not be fetched)."""


class HealthTimeout(LifecycleError):
    """The service did not become healthy (or drained) within the time allowed."""


class NotConfigured(ServiceUnavailable, LifecycleError):
    """A setting the workflow needs is missing (see docs/lifecycle.md)."""


class TransientLifecycleError(ServiceUnavailable):
    """A failure worth retrying (throttling, a dropped connection); the ASL retries it with backoff."""
