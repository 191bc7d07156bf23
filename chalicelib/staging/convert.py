"""One shard at a time, on local files: PyTorch state dict → safetensors (checked bit for bit), or verify a
safetensors file. Memory is bounded by one shard: the input is memory-mapped and nothing else is held.

torch and safetensors are imported inside the functions that need them (only the conversion Lambda, a container
image, has them); `verify_safetensors` needs neither.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from chalicelib.staging.errors import CorruptShard, UnsupportedFile

_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
    "C64": 8,
}
_MAX_HEADER = 100 * 1024 * 1024
_CHUNK = 8 * 1024 * 1024


@dataclass
class ShardResult:
    """What a shard became: its tensors (name → byte size) and the safetensors file written or verified."""

    tensors: dict[str, int] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)  # names that shared storage in the original (stored separately)

    @property
    def tensor_bytes(self) -> int:
        """The bytes of all tensors (the safetensors index's total_size)."""
        return sum(self.tensors.values())


def sha256_of(stream: IO[bytes]) -> str:
    """Hex sha256 of everything left in `stream`, read in chunks."""
    digest = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}"


def _load_state_dict(path: Path, name: str) -> dict[str, Any]:
    """The tensors of a pickled PyTorch state dict, loaded safely (`weights_only`) and memory-mapped."""
    import torch

    is_zip = zipfile.is_zipfile(path)
    if is_zip:
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()  # CRC of every record: catches flipped bytes inside tensor data
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise CorruptShard(f"{name}: damaged archive ({_short(error)})") from None
        if bad is not None:
            raise CorruptShard(f"{name}: checksum mismatch in {bad!r} (the file is damaged)")
    else:
        with path.open("rb") as f:
            if f.read(1) != b"\x80":  # the legacy (pre-1.6) format is a pickle stream: protocol 2+ starts so
                raise CorruptShard(f"{name}: neither a PyTorch zip archive nor a legacy PyTorch pickle (damaged?)")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except Exception as error:  # torch raises many types for a damaged pickle
        if "Weights only load failed" in str(error):
            raise UnsupportedFile(
                f"{name}: not a plain PyTorch state dict (it pickles Python objects; LISA never unpickles those)"
            ) from None
        raise CorruptShard(f"{name}: cannot be read as PyTorch weights ({_short(error)})") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not loaded:
        raise UnsupportedFile(f"{name}: not a state dict (a mapping of tensor names to tensors)")
    not_tensors = sorted(str(k) for k, v in loaded.items() if not isinstance(v, torch.Tensor) or not isinstance(k, str))
    if not_tensors:
        raise UnsupportedFile(f"{name}: entries that are not named tensors: {', '.join(not_tensors[:5])}")
    return loaded


def _independent(tensors: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Contiguous tensors owning their bytes: safetensors refuses shared storage (tied weights, views), so a
    tensor sharing storage with another is cloned; every name is kept, so the model loads exactly as before."""
    by_storage: dict[tuple[str, int], list[str]] = {}
    for name, tensor in tensors.items():
        if tensor.numel():
            storage = tensor.untyped_storage()
            by_storage.setdefault((str(tensor.device), storage.data_ptr()), []).append(name)
    shared = {name for names in by_storage.values() if len(names) > 1 for name in names}
    out = {name: (t.clone() if name in shared else t).contiguous() for name, t in tensors.items()}
    return out, sorted(shared)


def _same_bits(a: Any, b: Any) -> bool:
    import torch

    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.numel() == 0:
        return True
    return bool(torch.equal(a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8)))


def convert_to_safetensors(source: Path, target: Path, name: str | None = None) -> ShardResult:
    """Write `source` (a pickled PyTorch state dict) as safetensors at `target`, then re-read `target` and check
    every tensor equals the original bit for bit (`CorruptShard` if not). `name` labels errors."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    label = name or source.name
    original = _load_state_dict(source, label)
    tensors, aliases = _independent(original)
    try:
        save_file(tensors, str(target), metadata={"format": "pt"})
    except Exception as error:
        raise CorruptShard(f"{label}: cannot be written as safetensors ({_short(error)})") from None
    del tensors
    result = ShardResult(aliases=aliases)
    with safe_open(str(target), framework="pt") as written:
        names = set(written.keys())
        if names != set(original):
            raise CorruptShard(f"{label}: converted file has tensors {sorted(names ^ set(original))[:5]} differ")
        for key in sorted(names):
            copy = written.get_tensor(key)
            if not _same_bits(original[key], copy):
                raise CorruptShard(f"{label}: tensor {key!r} differs after conversion")
            result.tensors[key] = copy.numel() * copy.element_size()
            del copy
    return result


def verify_safetensors(path: Path, name: str | None = None) -> ShardResult:
    """Check a safetensors file's structure without loading it: a sane JSON header, known dtypes, and tensors
    whose byte ranges match their shapes and tile the data section exactly. `CorruptShard` otherwise."""
    label = name or path.name
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CorruptShard(f"{label}: too short to be safetensors ({size} bytes)")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > min(_MAX_HEADER, size - 8):
            raise CorruptShard(f"{label}: header length {header_len} does not fit a {size}-byte file")
        try:
            header = json.loads(f.read(header_len))
        except (ValueError, UnicodeDecodeError) as error:
            raise CorruptShard(f"{label}: unreadable header ({_short(error)})") from None
    if not isinstance(header, dict):
        raise CorruptShard(f"{label}: header is not a JSON object")
    header.pop("__metadata__", None)
    data_len = size - 8 - header_len
    spans: list[tuple[int, int]] = []
    result = ShardResult()
    for key, info in header.items():
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
            expected = math.prod(int(d) for d in shape) * _DTYPE_BYTES[dtype]
        except (KeyError, TypeError, ValueError):
            raise CorruptShard(f"{label}: tensor {key!r} has an invalid or unknown entry {info!r}") from None
        if not (0 <= begin <= end <= data_len) or end - begin != expected:
            raise CorruptShard(f"{label}: tensor {key!r} byte range {begin}..{end} does not match {dtype}{shape}")
        spans.append((begin, end))
        result.tensors[key] = end - begin
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise CorruptShard(f"{label}: tensor data overlaps or leaves a gap at byte {position}")
        position = end
    if position != data_len:
        raise CorruptShard(
            f"{label}: {data_len - position} trailing byte(s) after the last tensor (truncated or padded)"
        )
    if not result.tensors:
        raise CorruptShard(f"{label}: holds no tensors")
    return result
