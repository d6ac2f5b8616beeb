"""Benchmarks of issue 16: torch tensors and models keyed, stored and loaded beside their floors.

    .venv/bin/pip install -e ".[bench]"
    .venv/bin/python benchmarks/gpu.py           # the CPU rows, and the CUDA rows where a device is present
    .venv/bin/python benchmarks/gpu.py --quick   # small sizes, for a smoke run
    .venv/bin/python benchmarks/gpu.py --readme  # and rewrite README.md's table between the gpu-table markers

Each measure is printed beside its floor, measured in the same process with the contenders taking
turns, and the ratio; the goals are issue 16's. No figure here is an assertion.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import xxhash

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import human, quick_or_readme, ratio_row
from benchmarks._timing import interleaved, round_robin
from benchmarks.readme_table import replaced
from notebook_memo import memo
from notebook_memo.hashing import content_hash

ROWS: list[tuple[str, str, float, float, str, bool]] = []
MiB = 1 << 20
README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- gpu-table:start -->", "<!-- gpu-table:end -->"


class Held:
    """A value passed to a memoized function keyed by a name, so a store or load is timed without hashing it."""

    def __init__(self, value: Any, name: str) -> None:
        self.value, self.name = value, name

    def __memo_key__(self) -> str:
        return self.name


def row(measure: str, floor_label: str, floor: float, ours: float, goal: str, most: float) -> None:
    """Print one measure's ratio line and keep it for the summary (``most``: the goal as a ratio)."""
    ratio_row(ROWS, measure, floor_label, floor, ours, goal, most)


def synced(fn: Callable[[], Any], device: str) -> Callable[[], Any]:
    """Return ``fn`` followed by a wait for the device, so a timing covers the work it queued."""
    if device != "cuda":
        return fn

    def call() -> Any:
        out = fn()
        torch.cuda.synchronize()
        return out

    return call


def model(layers: int, width: int, dtype: torch.dtype, device: str) -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(*[torch.nn.Linear(width, width, bias=False) for _ in range(layers)])
    return net.to(dtype=dtype, device=device).eval()


def hash_tensor(device: str, quick: bool) -> None:
    n = (64 if quick else (1024 if device == "cuda" else 256)) * MiB
    t = torch.randint(-(2**31), 2**31, (n // 4,), dtype=torch.int32, device=device)
    print(f"\nhash a {n >> 20} MiB {device} tensor")
    if device == "cuda":
        scratch = torch.empty_like(t)
        floor_label, floor = "on-device copy", lambda: scratch.copy_(t)
    else:
        array = t.numpy()
        floor_label, floor = "xxh3 of its buffer", lambda: xxhash.xxh3_128_digest(array)
    best = round_robin({"floor": synced(floor, device), "ours": synced(lambda: content_hash(t), device)},
                       number=1, rounds=5)
    print(f"  notebook_memo: {n / best['ours'] / 1e9:.1f} GB/s; {floor_label}: {n / best['floor'] / 1e9:.1f} GB/s")
    if device == "cuda":
        row(f"hash a {n >> 20} MiB CUDA tensor", floor_label, best["floor"], best["ours"],
            ">= 100 GB/s", n / 100e9 / best["floor"])
    else:
        row(f"hash a {n >> 20} MiB CPU tensor", floor_label, best["floor"], best["ours"], "<= 1.1x", 1.1)


def model_hit(device: str, quick: bool, root: Path) -> None:
    cuda = device == "cuda"
    layers, width = (4, 1024) if quick else (16, 4096)  # full: issue 16's 537 MB fp16 model
    dtype = torch.float16
    net = model(layers, width, dtype, device)
    weights = sum(p.nbytes for p in net.parameters())
    batch = torch.randn(8, width, device=device, dtype=dtype)

    @memo(cache_dir=root / f"model-{device}")
    def infer(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(x)

    infer(net, batch)
    label = f"hit of infer(model, batch), {weights / 1e6:.0f} MB {str(dtype)[6:]} model, {device}"
    print(f"\n{label}: {layers} Linear layers of {width}")
    if cuda:
        def forward() -> Any:
            with torch.no_grad():
                return net(batch)

        best = round_robin({"floor": synced(forward, device), "ours": synced(lambda: infer(net, batch), device)},
                           number=3, rounds=5)
        row(label, "the forward pass", best["floor"], best["ours"], "<= 5 ms", 5e-3 / best["floor"])
    else:
        params = [p.detach().numpy() for p in net.parameters()]
        best = round_robin({"floor": lambda: [xxhash.xxh3_128_digest(p) for p in params],
                            "ours": lambda: infer(net, batch)}, number=2, rounds=9)  # memory bandwidth drifts
        row(label, "one xxh3 pass over the weights", best["floor"], best["ours"], "<= 1.2x", 1.2)
    assert infer.cache_info().misses == 1, "the benchmark's calls must be hits"


def hits_only(fn: Any) -> None:
    """Fail the run when a memoized function the benchmark times as a hit was a miss after its first call."""
    info = fn.cache_info()
    assert info.misses == 1, f"{fn.__name__}: {info.misses} misses, the benchmark's calls must be hits"


def store_and_load(device: str, quick: bool, root: Path) -> None:
    n = (32 if quick else 256) * MiB
    tensor = torch.arange(n // 4, dtype=torch.float32, device=device)
    where = root / f"store-{device}"
    where.mkdir(parents=True, exist_ok=True)
    saved = where / "t.pt"

    def ours_store(tag: int) -> None:
        @memo(cache_dir=where / f"c{tag}")
        def make(held: Held) -> torch.Tensor:
            return held.value  # type: ignore[no-any-return]

        make(Held(tensor, f"store {tag}"))

    # Each write goes to a new file, for both: overwriting one file frees its pages first.
    best = interleaved({"torch.save": lambda tag: torch.save(tensor, where / f"t{tag}.pt"), "ours": ours_store},
                       rounds=6)
    print(f"\nstore and load a {n >> 20} MiB {device} tensor")
    row(f"store a {n >> 20} MiB {device} tensor (a miss that returns it)", "torch.save", best["torch.save"],
        best["ours"], "<= 1.1x", 1.1)

    @memo(cache_dir=where / "hits")
    def make(held: Held) -> torch.Tensor:
        return held.value  # type: ignore[no-any-return]

    @memo(cache_dir=where / "maps", mmap=True)
    def make_mapped(held: Held) -> torch.Tensor:
        return held.value  # type: ignore[no-any-return]

    held = Held(tensor, "load")
    make(held)
    make_mapped(held)
    torch.save(tensor, saved)
    load = lambda: torch.load(saved, map_location=device)  # noqa: E731
    best = round_robin({"torch.load": synced(load, device), "ours": synced(lambda: make(held), device)},
                       number=1, rounds=5)
    row(f"load a {n >> 20} MiB {device} tensor (a hit)", "torch.load", best["torch.load"], best["ours"],
        "<= 1.1x", 1.1)
    if device == "cpu":
        best = round_robin({"torch.load(mmap=True)": lambda: torch.load(saved, mmap=True),
                            "ours": lambda: make_mapped(held)}, number=20, rounds=5)
        row(f"hit with mmap=True, {n >> 20} MiB CPU tensor", "torch.load(mmap=True)",
            best["torch.load(mmap=True)"], best["ours"], "<= 1.1x", 1.1)
        hits_only(make_mapped)
    hits_only(make)


def dict_hit(quick: bool, root: Path) -> None:
    n = (32 if quick else 300) * MiB
    value = {"embeddings": torch.arange(n // 4, dtype=torch.float32), "ids": list(range(100_000))}
    saved = root / "dict.pt"
    torch.save(value, saved)

    @memo(cache_dir=root / "dict")
    def make(held: Held) -> dict[str, Any]:
        return held.value  # type: ignore[no-any-return]

    held = Held(value, "dict")
    make(held)
    best = round_robin({"torch.load": lambda: torch.load(saved), "ours": lambda: make(held)}, number=1, rounds=5)
    print(f"\nhit of a result dict {{{n >> 20} MiB CPU tensor, 100,000 ints}}")
    row(f"hit of a dict {{{n >> 20} MiB CPU tensor, 100k ints}}", "torch.load", best["torch.load"], best["ours"],
        "<= 1.1x", 1.1)
    hits_only(make)


def main() -> None:
    args = quick_or_readme(__doc__)
    cuda = torch.cuda.is_available()
    machine = (f"torch {torch.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
               f"{torch.cuda.get_device_name() if cuda else 'no CUDA device: the CUDA rows are not measured'}")
    print(machine)
    root = Path(tempfile.mkdtemp(prefix="nbm-gpu-bench-"))
    start = time.perf_counter()
    try:
        for device in ["cpu", *(["cuda"] if cuda else [])]:
            hash_tensor(device, args.quick)
            model_hit(device, args.quick, root)
            store_and_load(device, args.quick, root)
        dict_hit(args.quick, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    width = max(len(r[0]) for r in ROWS)
    print(f"\nsummary (issue 16), {time.perf_counter() - start:.0f} s: ratio = notebook_memo / floor, same run")
    print(f"  {'measure':<{width}} {'floor':<32} {'floor':>10} {'ours':>10} {'ratio':>7}  {'goal':<12} met")
    for measure, floor_label, floor, ours, goal, met in ROWS:
        print(f"  {measure:<{width}} {floor_label:<32} {human(floor):>10} {human(ours):>10} {ours / floor:>6.2f}x  "
              f"{goal:<12} {'yes' if met else 'no'}")
    if args.readme:
        lines = ["| measure | floor | notebook_memo | x floor | goal |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {measure} | {floor_label}: {human(floor)} | {human(ours)} | {ours / floor:.2f}x | {goal} "
                  f"({'met' if met else 'not yet'}) |" for measure, floor_label, floor, ours, goal, met in ROWS]
        lines += ["", f"Measured by `benchmarks/gpu.py` ({machine}), "
                      f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; each floor in the same process, "
                      "the contenders taking turns."]
        README.write_text(replaced(README.read_text(), "\n".join(lines), START, END))
        print(f"rewrote the table between the gpu-table markers in {README}")


if __name__ == "__main__":
    main()
