"""FetchFromHub: mirror a Hugging Face hub repository into S3 so the rest of the workflow reads one kind of source
(connected deployments only; an airgapped one stages a folder the CLI uploaded)."""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib.contracts.staging import FetchFromHubInput
from chalicelib.staging.errors import SourceNotFound, TransientStagingError
from chalicelib.staging.layout import SAFETENSORS_INDEX, SourceFile, plan_layout, upload_prefix, validate_model_id
from chalicelib.staging.models import HubSource, S3Source, StagingInput
from chalicelib.staging.objects import delete_keys, list_files, models_bucket, s3, transient_aware
from chalicelib.staging.tasks import require

logger = Logger(service="lisa-staging")


def hub_transport_errors() -> tuple[type[BaseException], ...]:
    """The connection/timeout errors of the HTTP client huggingface_hub uses (httpx, or its httpx2 fork), and
    OSError (disk, sockets)."""
    found: list[type[BaseException]] = []
    for module in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(module).TransportError)
        except (ImportError, AttributeError):
            continue
    return (*found, OSError)


@transient_aware
def fetch_from_hub(event: dict[str, Any]) -> dict[str, Any]:
    """Mirror a hub repository's files to `_uploads/<org>/<name>/`, one file at a time through /tmp; returns the
    S3 source that replaces the hub source. Needs a reachable hub (connected deployments)."""
    request = StagingInput.model_validate(FetchFromHubInput.model_validate(event).request)
    model_id = validate_model_id(request.hf_model_id)
    source = request.source
    revision = source.revision if isinstance(source, HubSource) else "main"
    require("fetching from the Hugging Face Hub", "huggingface_hub")
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    bucket, prefix = models_bucket(), upload_prefix(model_id)
    try:
        names = HfApi().list_repo_files(model_id, revision=revision)
        layout = plan_layout([SourceFile(name, name, 0) for name in names])
        wanted = [s.name for s in layout.shards] + [f.name for f in layout.files]
        for name in ("pytorch_model.bin.index.json", SAFETENSORS_INDEX):
            if name in names:
                wanted.append(name)
        with tempfile.TemporaryDirectory(prefix="lisa-hub-") as tmp:
            for name in wanted:
                local = Path(hf_hub_download(model_id, name, revision=revision, cache_dir=tmp))
                s3().upload_file(str(local), bucket, prefix + name)
                local.unlink()
    except (OfflineModeIsEnabled, LocalEntryNotFoundError) as error:
        raise SourceNotFound(
            f"the Hugging Face hub is not reachable from here ({error}); on an airgapped system upload a local "
            "folder instead: `lisa models stage org/name --from models/`"
        ) from None
    except (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError, EntryNotFoundError) as error:
        raise SourceNotFound(f"hub repository {model_id}@{revision}: {error}") from None
    except HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        if status is None or status >= 500 or status == 429:
            raise TransientStagingError(f"hub download failed: {error}") from None
        raise SourceNotFound(f"hub repository {model_id}@{revision}: {error}") from None
    except hub_transport_errors() as error:  # connection refused/reset, timeouts, disk
        raise TransientStagingError(f"hub download failed: {error}") from None
    stale = [f.key for f in list_files(bucket, prefix) if f.name not in set(wanted)]
    delete_keys(bucket, stale)
    logger.info("mirrored hub repository", model_id=model_id, revision=revision, files=len(wanted))
    return S3Source(bucket=bucket, prefix=prefix, origin=f"hf://{model_id}@{revision}").model_dump(by_alias=True)
