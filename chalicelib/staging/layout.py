"""Where staged weights live and what each source file is; pure functions, no AWS, no torch.

<org>/<name>/...                  a staged model (the HF id as prefix), `lisa-manifest.json` written last
_uploads/<org>/<name>/...         a local folder mirrored by the CLI (the airgapped path) or a hub download
_staging/<execution name>/...     one execution's converted shards before they are published
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Literal

from chalicelib.staging.errors import CorruptShard, InvalidModelName, UnsupportedFile

MODEL_ID = re.compile(r"^[A-Za-z0-9][\w.\-]{0,95}/[A-Za-z0-9][\w.\-]{0,95}$")
MANIFEST = "lisa-manifest.json"
SAFETENSORS_INDEX = "model.safetensors.index.json"
UPLOADS = "_uploads/"
WORK = "_staging/"

CONVERTIBLE = (".bin", ".pt", ".pth")
"""Pickled PyTorch state dicts: converted to safetensors."""
UNSUPPORTED = {
    ".h5": "TensorFlow",
    ".keras": "Keras",
    ".msgpack": "Flax",
    ".onnx": "ONNX",
    ".gguf": "GGUF",
    ".ggml": "GGML",
    ".ckpt": "checkpoint",
    ".tflite": "TensorFlow Lite",
    ".npz": "NumPy",
    ".pkl": "pickle",
    ".ot": "Rust tch",
    ".mlmodel": "Core ML",
}
"""Weight formats that cannot be converted (ignored when the model also has safetensors or PyTorch weights)."""
NOT_WEIGHTS = re.compile(r"^(training_args\.bin|optimizer\.pt|scheduler\.pt|scaler\.pt|rng_state.*\.pth)$")
"""Training leftovers with weight-like suffixes: never served, never copied."""
_SKIPPED_INDEXES = {"pytorch_model.bin.index.json", SAFETENSORS_INDEX}

ShardKind = Literal["convert", "verify"]


def validate_model_id(model_id: str) -> str:
    """`org/name` or `InvalidModelName`."""
    if not isinstance(model_id, str) or not MODEL_ID.match(model_id):
        raise InvalidModelName(
            f"model id must be 'org/name' (a Hugging Face model id: letters, digits, '_', '.', '-'), got {model_id!r}"
        )
    return model_id


def model_prefix(model_id: str) -> str:
    """Where a staged model lives in the models bucket."""
    return f"{validate_model_id(model_id)}/"


def upload_prefix(model_id: str) -> str:
    """Where the CLI mirrors a local folder (and hub downloads land) before staging."""
    return f"{UPLOADS}{validate_model_id(model_id)}/"


def work_prefix(execution_name: str) -> str:
    """One execution's scratch space."""
    return f"{WORK}{execution_name}/"


def execution_slug(model_id: str) -> str:
    """The execution-name prefix of a model id: Step Functions names allow no '/' and at most 80 characters."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "-", model_id.replace("/", "--"))[:56]


def execution_name(model_id: str, now: datetime | None = None) -> str:
    """A new execution's name: the model's slug, the UTC start second and a random suffix (≤ 80 characters)."""
    return f"{execution_slug(model_id)}-{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


def safetensors_name(name: str) -> str:
    """`pytorch_model-00001-of-00002.bin` → `model-00001-of-00002.safetensors` (HF's naming)."""
    path = PurePosixPath(name)
    stem = path.stem
    if stem.startswith("pytorch_model"):
        stem = "model" + stem[len("pytorch_model") :]
    return str(path.with_name(f"{stem}.safetensors"))


@dataclass(frozen=True)
class SourceFile:
    """One object of the source: its name relative to the source prefix, key, size and ETag."""

    name: str
    key: str
    size: int
    etag: str = ""


@dataclass(frozen=True)
class Shard:
    """One weights file to convert (or, if already safetensors, to verify), and the safetensors it becomes."""

    name: str
    key: str
    size: int
    kind: ShardKind
    target: str


@dataclass(frozen=True)
class Layout:
    """What staging makes of a source: the shards to convert or verify and the other files to copy as they are."""

    shards: tuple[Shard, ...]
    files: tuple[SourceFile, ...]
    ignored: tuple[str, ...]

    @property
    def kind(self) -> ShardKind:
        """Whether the model's shards are converted or verified (all shards of a model are one kind)."""
        return self.shards[0].kind


def fingerprint(files: Iterable[SourceFile]) -> str:
    """A digest of the source listing (names, sizes, ETags): equal fingerprints mean an unchanged source."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.name):
        digest.update(f"{f.name}\0{f.size}\0{f.etag}\n".encode())
    return digest.hexdigest()


def _suffix(name: str) -> str:
    return PurePosixPath(name).suffix.lower()


def _index_shards(
    index_file: SourceFile | None, index_body: bytes | None, present: Mapping[str, SourceFile]
) -> set[str]:
    """The shard names an `*.index.json` lists; `CorruptShard` if it is unreadable or names a missing file."""
    if index_file is None or index_body is None:
        return set()
    try:
        weight_map = json.loads(index_body)["weight_map"]
        shards = {str(shard) for shard in weight_map.values()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise CorruptShard(f"{index_file.name}: not a valid index (a JSON object with a 'weight_map')") from None
    missing = sorted(shards - set(present))
    if missing:
        raise CorruptShard(f"{index_file.name} lists shard(s) that are missing: {', '.join(missing)}")
    return shards


def plan_layout(files: Iterable[SourceFile], indexes: Mapping[str, bytes] | None = None) -> Layout:
    """Decide what to do with each source file.

    Root-level `*.safetensors` weights win (they are only verified); otherwise PyTorch `.bin/.pt/.pth` shards are
    converted. With an index (`model.safetensors.index.json` / `pytorch_model.bin.index.json`, its body in
    `indexes`), exactly the shards it lists are used. Weight files of other formats, weights in sub-folders and
    training leftovers are ignored; every other file (config, tokenizer, ...) is copied unchanged.
    `UnsupportedFile` when there are no weights LISA can serve or convert.
    """
    indexes = indexes or {}
    files = list(files)
    root = {f.name: f for f in files if "/" not in f.name}
    safetensors = {n: f for n, f in root.items() if _suffix(n) == ".safetensors"}
    convertible = {n: f for n, f in root.items() if _suffix(n) in CONVERTIBLE and not NOT_WEIGHTS.match(n)}

    chosen: dict[str, SourceFile]
    kind: ShardKind
    if safetensors:
        listed = _index_shards(root.get(SAFETENSORS_INDEX), indexes.get(SAFETENSORS_INDEX), safetensors)
        chosen, kind = {n: safetensors[n] for n in sorted(listed or safetensors)}, "verify"
    elif convertible:
        index_name = "pytorch_model.bin.index.json"
        listed = _index_shards(root.get(index_name), indexes.get(index_name), convertible)
        chosen, kind = {n: convertible[n] for n in sorted(listed or convertible)}, "convert"
    else:
        unsupported = sorted(n for n in root if _suffix(n) in UNSUPPORTED)
        if unsupported:
            described = ", ".join(f"{n} ({UNSUPPORTED[_suffix(n)]})" for n in unsupported)
            raise UnsupportedFile(
                f"unsupported weights format: {described}; LISA serves .safetensors and converts PyTorch "
                f"{'/'.join(CONVERTIBLE)} state dicts"
            )
        raise UnsupportedFile(
            f"no weights found among {len(files)} file(s) ({', '.join(sorted(root)[:8]) or 'none at the top level'}); "
            f"expected .safetensors or PyTorch {'/'.join(CONVERTIBLE)} files"
        )

    shards = tuple(
        Shard(f.name, f.key, f.size, kind, f.name if kind == "verify" else safetensors_name(f.name))
        for f in chosen.values()
    )
    targets = [s.target for s in shards]
    if len(set(targets)) != len(targets):
        raise UnsupportedFile(f"two weights files would convert to the same name: {', '.join(sorted(targets))}")

    weight_suffixes = {".safetensors", *CONVERTIBLE, *UNSUPPORTED}
    copies, ignored = [], []
    for f in sorted(files, key=lambda f: f.name):
        if f.name in chosen:
            continue
        is_weight = _suffix(f.name) in weight_suffixes or NOT_WEIGHTS.match(PurePosixPath(f.name).name) is not None
        if is_weight or f.name in _SKIPPED_INDEXES or f.name in targets or f.name == MANIFEST:
            ignored.append(f.name)
        else:
            copies.append(f)
    return Layout(shards, tuple(copies), tuple(ignored))
