"""The model task's weight fetch (gpu_stack/stacks/models.py FETCH_SCRIPT), run with sh against a stand-in `aws`
that serves `s3://bucket/...` from a local folder: it needs staging's manifest, fetches only what it lists and
checks every sha256."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gpu_stack.stacks.models import FETCH_SCRIPT, MANIFEST

_FAKE_AWS = """#!/bin/sh
# aws s3 cp --no-progress s3://bucket/<key> <file>
src="$4"; dst="$5"; path="$FAKE_S3/${src#s3://}"
[ -f "$path" ] || { echo "fatal error: 404 $src" >&2; exit 1; }
mkdir -p "$(dirname "$dst")" && cp "$path" "$dst"
"""


def _stage(bucket: Path, files: dict[str, bytes], manifest: bool = True) -> None:
    prefix = bucket / "org" / "model"
    prefix.mkdir(parents=True)
    for name, data in files.items():
        (prefix / name).parent.mkdir(parents=True, exist_ok=True)
        (prefix / name).write_bytes(data)
    if manifest:
        entries = [{"name": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for n, d in files.items()]
        document = {"hfModelId": "org/model", "files": sorted(entries, key=lambda e: e["name"]), "format": "x"}
        (prefix / MANIFEST).write_text(json.dumps(document, indent=2, sort_keys=True))


def _fetch(tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    tools = tmp_path / "bin"
    tools.mkdir(exist_ok=True)
    (tools / "aws").write_text(_FAKE_AWS)
    (tools / "aws").chmod(0o755)
    target = tmp_path / "data" / "model"
    env = {**os.environ, "PATH": f"{tools}:{os.environ['PATH']}", "FAKE_S3": str(tmp_path / "s3")}
    result = subprocess.run(
        ["sh", "-c", FETCH_SCRIPT, "fetch-weights", "s3://bucket/org/model", str(target)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return result, target


@pytest.fixture(autouse=True)
def _needs_sha256sum() -> None:
    if shutil.which("sha256sum") is None:
        pytest.skip("sha256sum is not installed")


FILES = {"config.json": b"{}", "model.safetensors": b"weights" * 100, "sub/tokenizer.json": b"tok"}


def test_fetches_only_the_files_the_manifest_lists(tmp_path: Path) -> None:
    _stage(tmp_path / "s3" / "bucket", FILES)
    (tmp_path / "s3" / "bucket" / "org" / "model" / "partial-shard.bin").write_bytes(b"left over")
    result, target = _fetch(tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == sorted(FILES)
    assert (target / "model.safetensors").read_bytes() == FILES["model.safetensors"]
    assert "fetched 3 files" in result.stdout


def test_no_manifest_is_a_clear_failure(tmp_path: Path) -> None:
    _stage(tmp_path / "s3" / "bucket", FILES, manifest=False)
    result, target = _fetch(tmp_path)
    assert result.returncode == 1
    assert "lisa-manifest.json: the model is not staged (or its staging failed)" in result.stderr
    assert not any(target.rglob("*.safetensors"))


def test_a_file_that_differs_from_its_sha256_fails(tmp_path: Path) -> None:
    _stage(tmp_path / "s3" / "bucket", FILES)
    (tmp_path / "s3" / "bucket" / "org" / "model" / "model.safetensors").write_bytes(b"half a publish")
    result, _ = _fetch(tmp_path)
    assert result.returncode == 1
    assert "model.safetensors: its sha256 differs" in result.stderr
