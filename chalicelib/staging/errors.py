"""Staging failures. A task raises one; its class name is the error name the ASL's Retry/Catch match on
(Lambda reports an unhandled exception's class name as `errorType`), and its message is the reason recorded."""

from __future__ import annotations

from chalicelib.errors import Conflict, LisaError, ServiceUnavailable


class StagingError(LisaError):
    """A staging failure that will not go away by retrying (a 500 if one ever reached a route: not a refusal)."""


class InvalidModelName(StagingError):
    """The model id is not `org/name`."""


class SourceNotFound(StagingError):
    """Nothing to stage where the source points (missing folder, empty prefix, unknown hub repo)."""


class UnsupportedFile(StagingError):
    """Weights in a format LISA cannot convert to safetensors, or a file that is not a state dict."""


class CorruptShard(StagingError):
    """A weights file that cannot be read, is incomplete, or whose conversion does not match bit for bit."""


class ShardTooLarge(StagingError):
    """A shard bigger than a conversion Lambda can hold (see docs/staging.md for the route for those)."""


class MissingDependency(StagingError):
    """The function runs without a library its task needs (deployed as a zip instead of the staging image)."""


class StagingInProgress(Conflict, StagingError):
    """Another execution is staging the same model."""


class StagingNotConfigured(ServiceUnavailable, StagingError):
    """No state machine to run (LISA_STAGING_STATE_MACHINE_ARN is unset)."""


class TransientStagingError(ServiceUnavailable):
    """A failure worth retrying (throttling, a dropped connection); the ASL retries it with backoff."""
