"""`lisa rag ...`: RAG repositories and bulk document loads.

    lisa rag sync --config config.yaml          seed the repositories table from ragRepositories
    lisa rag list                               repositories
    lisa rag ingest ./docs --repository default upload a folder, then wait for every file's ingestion status
    lisa rag documents default                  documents and their status

Like `lisa models`, it talks to AWS directly, wherever the settings point (moto server, LocalStack or real AWS). An
upload goes to `s3://<docs bucket>/<repository>/<relative path>`; the bucket's notification queues it for the
ingestion handler (locally the stack's SQS poller), and `ingest` follows each file's record in the documents table
until it is READY or FAILED. Files whose recorded content hash already matches are not uploaded again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.common import err, fail, run

app = typer.Typer(help="RAG repositories and document ingestion.", no_args_is_help=True)
out = Console()
T = TypeVar("T")

_STYLE = {"READY": "green", "FAILED": "red", "INGESTING": "yellow", "RETRYING": "yellow"}


def _run(action: Callable[[], T]) -> T:
    """Run an AWS-backed call; a RAG or config error exits 2, an AWS failure 1, each with a message."""
    from chalicelib.config import ConfigError
    from chalicelib.rag.errors import RagError

    return run(action, "RAG tables", {RagError: 2, ConfigError: 2})


AsJson = typer.Option(False, "--json", help="Print JSON instead of text.")


@app.command()
def sync(
    config: Path = typer.Option(Path("config.yaml"), "--config", "-c", help="config.yaml to read."),
    as_json: bool = AsJson,
) -> None:
    """Create or update the repositories of config.yaml's `ragRepositories` (idempotent)."""
    from chalicelib.config import load_config
    from chalicelib.rag.repositories import sync_repositories

    result = _run(lambda: sync_repositories(load_config(config)))
    if as_json:
        out.print_json(json.dumps(result.to_dict()))
        return
    for what, ids in result.to_dict().items():
        if ids:
            out.print(f"{what}: {', '.join(ids)}", highlight=False)
    out.print(f"{len(result.created)} created, {len(result.updated)} updated, {len(result.unchanged)} unchanged")


@app.command("list")
def list_repositories(as_json: bool = AsJson) -> None:
    """Every repository (id, type, embedding model, allowed groups)."""
    from chalicelib.rag.repositories import RepositoryStore

    records = _run(RepositoryStore().list)
    if as_json:
        out.print_json(json.dumps([r.public_wire() for r in records]))
        return
    table = Table("repository", "type", "embedding model", "chunking", "allowed groups", "source")
    for r in records:
        groups = ", ".join(r.allowed_groups) or "everyone"
        chunking = f"{r.chunking.size}/{r.chunking.overlap}"
        table.add_row(r.repository_id, r.type, r.embedding_model_id, chunking, groups, r.source)
    out.print(table)


@app.command()
def documents(repository: str = typer.Argument(..., help="Repository id."), as_json: bool = AsJson) -> None:
    """A repository's documents and their ingestion status."""
    from chalicelib.rag.documents import DocumentStore
    from chalicelib.rag.repositories import RepositoryStore

    _run(lambda: RepositoryStore().get(repository))
    records = _run(lambda: DocumentStore().list(repository))
    if as_json:
        out.print_json(json.dumps([r.wire() for r in records]))
        return
    table = Table("file", "status", "chunks", "size", "updated", "reason")
    for r in sorted(records, key=lambda record: record.filename):
        status = f"[{_STYLE.get(r.status.value, 'white')}]{r.status.value}[/]"
        table.add_row(r.filename, status, str(r.chunk_count), str(r.size), r.updated_at, r.status_reason or "")
    out.print(table)


@dataclass
class _File:
    path: Path
    key: str
    content_hash: str
    document_id: str
    size: int


def _collect(folder: Path, repository: str, bucket: str) -> tuple[list[_File], list[Path]]:
    """The supported files under `folder` (as documents of `repository`) and the ones skipped."""
    from chalicelib.rag.documents import document_id
    from chalicelib.rag.models import SUPPORTED_EXTENSIONS

    files, skipped = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder)
        if path.suffix.lower() not in SUPPORTED_EXTENSIONS or any(part.startswith(".") for part in relative.parts):
            skipped.append(relative)
            continue
        data = path.read_bytes()
        key = f"{repository}/{relative.as_posix()}"
        files.append(_File(path, key, hashlib.sha256(data).hexdigest(), document_id(bucket, key), len(data)))
    return files, skipped


@app.command()
def ingest(
    folder: Path = typer.Argument(
        ..., exists=True, file_okay=False, help="Folder of documents (searched recursively)."
    ),
    repository: str = typer.Option(..., "--repository", "-r", help="Repository to load into."),
    uploaded_by: str = typer.Option(
        "cli",
        "--as",
        help="The API-token user recorded as the uploader (may later delete the files); an owner id such as "
        "'jwt:<iss>|<sub>' is taken as given.",
    ),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until every file is READY or FAILED."),
    timeout: float = typer.Option(1800.0, "--timeout", min=1, help="Seconds to wait for ingestion."),
    as_json: bool = AsJson,
) -> None:
    """Upload a folder's txt/md/html/pdf/docx files into a repository and follow their ingestion."""
    from chalicelib import aws
    from chalicelib.auth.principal import Principal
    from chalicelib.rag.documents import DocumentStore
    from chalicelib.rag.models import UPLOADED_BY, DocumentStatus
    from chalicelib.rag.parsing import content_type_of
    from chalicelib.rag.repositories import RepositoryStore
    from chalicelib.settings import get_settings

    _run(lambda: RepositoryStore().get(repository))
    owner = uploaded_by if ":" in uploaded_by else Principal(uploaded_by, (), False, "token").owner_id
    bucket = get_settings().docs_bucket
    files, skipped = _collect(folder, repository, bucket)
    for path in skipped:
        err.print(f"[yellow]skipped[/yellow] {path} (unsupported type or hidden)", highlight=False)
    if not files:
        raise fail(f"no supported files under {folder}", code=2)
    store, s3 = DocumentStore(), aws.client("s3")
    unchanged: set[str] = set()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=as_json,
    ) as progress:
        task = progress.add_task("uploading", total=len(files))
        for file in files:
            record = _run(partial(store.get, repository, file.document_id))
            if record and record.content_hash == file.content_hash and record.status is DocumentStatus.READY:
                unchanged.add(file.key)
            else:
                _run(
                    partial(
                        s3.put_object,
                        Bucket=bucket,
                        Key=file.key,
                        Body=file.path.read_bytes(),
                        ContentType=content_type_of(file.path.name),
                        Metadata={UPLOADED_BY: owner},
                    )
                )
            progress.advance(task)
        statuses: dict[str, tuple[str, int, str | None]] = {}
        if wait:
            task = progress.add_task("ingesting", total=len(files))
            deadline = time.monotonic() + timeout
            while len(statuses) < len(files) and time.monotonic() < deadline:
                for file in files:
                    if file.key in statuses:
                        continue
                    record = _run(partial(store.get, repository, file.document_id))
                    done = record and record.content_hash == file.content_hash
                    if record and done and record.status in (DocumentStatus.READY, DocumentStatus.FAILED):
                        statuses[file.key] = (record.status.value, record.chunk_count, record.status_reason)
                        progress.advance(task)
                if len(statuses) < len(files):
                    time.sleep(0.5)
    _report(files, statuses, unchanged, wait, as_json)


def _report(
    files: list[_File], statuses: dict[str, tuple[str, int, str | None]], unchanged: set[str], wait: bool, as_json: bool
) -> None:
    rows = []
    for file in files:
        status, chunks, reason = statuses.get(file.key, ("UPLOADED" if not wait else "PENDING", 0, None))
        rows.append(
            {
                "key": file.key,
                "status": status,
                "chunks": chunks,
                "reason": reason,
                "uploaded": file.key not in unchanged,
            }
        )
    failed = [r for r in rows if r["status"] == "FAILED"]
    pending = [r for r in rows if r["status"] == "PENDING"]
    if as_json:
        out.print_json(json.dumps(rows))
    else:
        for row in failed:
            out.print(f"[red]FAILED[/red] {row['key']}: {row['reason']}", highlight=False)
        ready = sum(1 for r in rows if r["status"] == "READY")
        chunks = sum(int(str(r["chunks"])) for r in rows)
        out.print(
            f"{len(rows)} files: {ready} ready ({chunks} chunks), {len(failed)} failed, {len(pending)} still pending,"
            f" {len(unchanged)} unchanged (not re-uploaded)"
        )
    if pending:
        raise fail(f"{len(pending)} file(s) were not ingested in time; see `lisa rag documents`", code=3)
    if failed:
        raise typer.Exit(1)
