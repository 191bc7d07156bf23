"""Weight staging: safetensors conversion throughput and peak memory against model size.

Two synthetic fp32 "models" of different total size, both cut into shards of the same size, are converted shard
by shard exactly as the conversion Lambda does (`chalicelib.staging.convert.convert_to_safetensors`: load the
shard memory-mapped, write safetensors, re-read and compare every tensor bit for bit). Each model runs in a fresh
process so its peak RSS (VmHWM) is its own; the baseline is a process that imports torch and safetensors and
converts nothing. Target: the RSS above baseline follows the largest shard, not the model (ratio to the shard
roughly constant across model sizes, ratio to the model falling).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARD_MB = 48
MODEL_MB = (96, 384)


def _child(folder: str) -> None:
    """In a fresh process: convert every shard of `folder` (or none when empty); print timings and peak RSS."""
    import safetensors.torch  # noqa: F401 (imported by every run, so the baseline holds what the conversion needs)
    import torch  # noqa: F401

    from chalicelib.staging.convert import convert_to_safetensors

    shards = sorted(Path(folder).glob("*.bin"))
    start = time.perf_counter()
    for shard in shards:
        target = shard.with_suffix(".safetensors")
        convert_to_safetensors(shard, target)
        target.unlink()
    elapsed = time.perf_counter() - start
    size = sum(s.stat().st_size for s in shards)
    print(json.dumps({"seconds": elapsed, "bytes": size, "peak_rss_mb": _peak_rss_mb()}))


def _peak_rss_mb() -> float:
    """This process's own peak RSS. Linux's ru_maxrss survives fork + exec (a child of a big parent starts at the
    parent's peak), so read the high-water mark of this address space (VmHWM) where there is one."""
    import resource

    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kilobytes = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return kilobytes / 1024


def _make_model(folder: Path, total_mb: int) -> None:
    import torch

    generator = torch.Generator().manual_seed(0)
    per_tensor = 4 * 1024 * 1024 // 4  # 4 MB fp32 tensors
    for i in range(total_mb // SHARD_MB):
        tensors = {
            f"layer{i}.w{j}": torch.randn(per_tensor, generator=generator).reshape(1024, -1)
            for j in range(SHARD_MB // 4)
        }
        torch.save(tensors, folder / f"pytorch_model-{i:05d}.bin")


def _measure(folder: Path) -> dict[str, float]:
    code = "import sys; from bench.bench_staging import _child; _child(sys.argv[1])"
    out = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run() -> None:
    with tempfile.TemporaryDirectory(prefix="lisa-bench-staging-") as tmp:
        empty = Path(tmp) / "empty"
        empty.mkdir()
        import safetensors.torch  # noqa: F401
        import torch  # noqa: F401  (warm the import for the children's page cache)

        baseline = _measure(empty)["peak_rss_mb"]
        print(f"baseline process (torch + safetensors imported, nothing converted): peak RSS {baseline:.0f} MB")
        print(f"shard size {SHARD_MB} MB (fp32), every tensor checked bit for bit after writing")
        print(
            f"{'model':>8} {'shards':>6} {'MB/s':>7} {'peak RSS':>9} {'above base':>10} {'÷ shard':>8} {'÷ model':>8}"
        )
        for total in MODEL_MB:
            folder = Path(tmp) / f"m{total}"
            folder.mkdir()
            _make_model(folder, total)
            result = _measure(folder)
            above = result["peak_rss_mb"] - baseline
            mb = result["bytes"] / 2**20
            print(
                f"{mb:>6.0f}MB {total // SHARD_MB:>6} {mb / result['seconds']:>7.0f} {result['peak_rss_mb']:>7.0f}MB "
                f"{above:>8.0f}MB {above / SHARD_MB:>8.2f} {above / mb:>8.2f}"
            )
            for f in folder.iterdir():
                f.unlink()
