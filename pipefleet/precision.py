"""Which precision a model runs in, whether this CPU can run bfloat16 natively, and the autocast
around forward passes.

``autocast: bfloat16`` keeps the weights in float32 and runs the matrix products in bfloat16
(``torch.autocast``); ``dtype: bfloat16`` stores the weights in bfloat16 too. On a CPU, bfloat16
is fast only where the processor computes it natively (AVX512-BF16 or AMX); elsewhere torch
emulates it and a forward pass gets slower than in float32, so pipefleet refuses it there and
says why. On a GPU, ``autocast: float16`` or ``bfloat16`` run as torch runs them.
"""

from __future__ import annotations

import contextlib
import functools
from typing import TYPE_CHECKING, Any

from pipefleet.errors import FatalError

if TYPE_CHECKING:
    from pipefleet.spec import Spec

# CPU flags (as /proc/cpuinfo names them) of native bfloat16 arithmetic, the best first.
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.cache
def cpu_bf16() -> str | None:
    """The flag by which this machine's CPU computes bfloat16 natively (``amx_bf16``, ``avx512_bf16``), or None."""
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    except OSError:  # not Linux: torch's own view of the CPU
        return _torch_bf16()
    return next((flag for flag in BF16_FLAGS if flag in flags), None)


def _torch_bf16() -> str | None:
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    return "avx512_bf16" if "BF16" in capability or "AMX" in capability else None


def cpu_kernels() -> str:
    """The CPU kernels torch dispatches to here (``AVX2``, ``AVX512``, ...)."""
    import torch

    return torch.backends.cpu.get_cpu_capability()


def check(spec: "Spec", device: Any) -> None:
    """Refuse bfloat16 on a CPU that would only emulate it, with what to change."""
    if getattr(device, "type", str(device)) != "cpu":
        return
    asks = [f"{key}: bfloat16" for key in ("dtype", "autocast") if getattr(spec, key) == "bfloat16"]
    if spec.autocast == "float16":
        raise FatalError("autocast: float16 runs on a GPU; on a CPU use autocast: bfloat16 (where it is native)")
    if asks and cpu_bf16() is None:
        raise FatalError(
            f"{' and '.join(asks)}: this CPU has no native bfloat16 arithmetic (AVX512-BF16 or AMX; torch "
            f"dispatches {cpu_kernels()} kernels here), so bfloat16 would run slower than float32; drop "
            f"{' and '.join(key.split(':')[0] for key in asks)}, or run on a CPU that has it "
            "(Intel Cooper Lake and later Xeons, AMD Zen 4 and later EPYCs)"
        )


def autocast(spec: "Spec", device: Any) -> contextlib.AbstractContextManager:
    """The context to run forward passes in: ``torch.autocast`` when the spec asks for it, else nothing."""
    if spec.autocast is None:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(getattr(device, "type", "cpu"), dtype=getattr(torch, spec.autocast))


def describe(spec: "Spec", model: Any, device: Any) -> dict[str, Any]:
    """The precision a model runs in, for manifests, ``GET /`` and the start-up lines.

    ``faster`` says what this CPU could run instead, when the spec leaves native bfloat16 unused.
    """
    weights = str(getattr(model, "dtype", "")).removeprefix("torch.") or None
    on_cpu = getattr(device, "type", str(device)) == "cpu"
    described: dict[str, Any] = {
        "weights": weights,
        "compute": spec.autocast or weights,
        "device": str(device),
    }
    if on_cpu:
        described |= {"cpu_kernels": cpu_kernels(), "cpu_bf16": cpu_bf16()}
        if cpu_bf16() and spec.autocast is None and weights == "float32":
            described["faster"] = "autocast: bfloat16 (this CPU computes bfloat16 natively)"
    return described


def summary(described: dict[str, Any]) -> str:
    """One line for people: ``float32 weights, bfloat16 compute (autocast) on cpu, AVX512 kernels, amx_bf16``."""
    compute = described.get("compute")
    weights = described.get("weights")
    parts = [f"{weights} weights" + (f", {compute} compute (autocast)" if compute != weights else "")]
    parts.append(f"on {described.get('device')}")
    if "cpu_kernels" in described:
        parts.append(f"{described['cpu_kernels']} kernels, native bfloat16: {described.get('cpu_bf16') or 'no'}")
    line = ", ".join(parts)
    return line + (f"; faster here: {described['faster']}" if described.get("faster") else "")
