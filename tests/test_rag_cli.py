"""`lisa rag ...` through Typer's CliRunner: a folder bulk-loaded into a repository on the moto server, ingested by
the local SQS poller (as the local stack runs it) with the real TEI worker into embedded PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chalicelib.rag.repositories import RepositoryStore
from cli.main import app
from runner.sqs_poller import SqsPoller
from tests.support.rag import create_repository, register_embedder
from tests.support.rag_documents import make_pdf

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"
runner = CliRunner()


def lisa(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["rag", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def poller(rag_env: str, tei_worker: str) -> Iterator[SqsPoller]:
    register_embedder(tei_worker)
    create_repository("docs")
    poller = SqsPoller.for_ingestion(retry_delay=1).start()
    yield poller
    poller.stop()


def _folder(tmp_path: Path, broken: bool) -> Path:
    folder = tmp_path / "library"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("Alpha centauri is the closest star system to the sun.")
    (folder / "sub" / "b.md").write_text("# Notes\n\nBeta carotene makes carrots orange.")
    (folder / "c.pdf").write_bytes(make_pdf([["Gamma rays have the shortest wavelength."]]))
    (folder / "image.bin").write_bytes(b"\x00\x01")
    (folder / ".hidden.txt").write_text("editor backup")
    if broken:
        (folder / "broken.docx").write_bytes(b"PK\x03\x04 not a docx")
    return folder


def test_ingest_uploads_a_folder_and_reports_every_files_outcome(poller: SqsPoller, tmp_path: Path) -> None:
    folder = _folder(tmp_path, broken=True)
    code, out, err = lisa("ingest", str(folder), "--repository", "docs", "--json", "--timeout", "120")
    assert code == 1, err  # one file failed
    rows = {row["key"]: row for row in json.loads(out)}
    assert set(rows) == {"docs/a.txt", "docs/sub/b.md", "docs/c.pdf", "docs/broken.docx"}
    assert {k: r["status"] for k, r in rows.items()} == {
        "docs/a.txt": "READY",
        "docs/sub/b.md": "READY",
        "docs/c.pdf": "READY",
        "docs/broken.docx": "FAILED",
    }
    assert "not a readable .docx" in rows["docs/broken.docx"]["reason"]
    assert all(r["uploaded"] for r in rows.values())
    assert "skipped image.bin" in " ".join(err.split())
    assert ".hidden.txt" in err

    (folder / "broken.docx").unlink()
    code, out, err = lisa("ingest", str(folder), "-r", "docs")
    assert code == 0, err
    assert "3 files: 3 ready (3 chunks), 0 failed, 0 still pending, 3 unchanged (not re-uploaded)" in " ".join(
        out.split()
    )

    code, out, _ = lisa("documents", "docs", "--json")
    assert code == 0
    listed = {d["filename"]: d for d in json.loads(out)}
    assert listed["sub/b.md"]["uploadedBy"] == "token:cli"  # the owner id a token user named "cli" has
    assert listed["broken.docx"]["status"] == "FAILED"


def test_unknown_repository_and_empty_folder(poller: SqsPoller, tmp_path: Path) -> None:
    code, _, err = lisa("ingest", str(tmp_path), "-r", "nope")
    assert code == 2
    assert "'nope' does not exist" in err
    code, _, err = lisa("ingest", str(tmp_path), "-r", "docs")
    assert code == 2
    assert "no supported files" in err


def test_sync_and_list(rag_env: str) -> None:
    code, out, err = lisa("sync", "--config", str(CONFIG))
    assert code == 0, err
    assert "created: default" in out
    assert lisa("sync", "-c", str(CONFIG))[1].strip().endswith("0 created, 0 updated, 1 unchanged")
    assert RepositoryStore().get("default").source == "config"
    code, out, _ = lisa("list", "--json")
    assert [r["repositoryId"] for r in json.loads(out)] == ["default"]
    assert "connection" not in json.loads(out)[0]
