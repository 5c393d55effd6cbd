"""The ``flops`` row of bench_pipeline.py: the blind-spot network's work per output pixel, counted (no clock).

Floating-point operations over the windows the tiler uses (automatic tile, or ``tile``), counted on the
meta device by torch's FlopCounterMode, for the whole-window forward pass and for the call the pipeline
makes (each direction on its context). Load-independent: it predicts a change of the timed row.
"""

from __future__ import annotations

from typing import Any

import torch


def flops(model: Any, size: int, tile: int | None) -> dict:
    """FLOPs per output pixel of the blind-spot row's network on its tiling, counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    from napari_selfsup_denoise.engine.predict import auto_tile, plan

    tile = tile or auto_tile(model, torch.device("cpu"), False)
    net, m, k = model.net.to("meta"), model.margin, model.multiple
    _, boxes, px = plan((1, 1, 1, 1, size, size), "YX", None, tile, 2)
    counts = {"whole": 0, "core": 0}
    for box in boxes:
        x = torch.empty((1, 1, *(-(-(hi - lo) // k) * k + 2 * m for lo, hi in box)), device="meta")
        for name in counts:
            counter = FlopCounterMode(display=False)
            with torch.inference_mode(), counter:
                net(x) if name == "whole" else _core(model, net, x)
            counts[name] += counter.get_total_flops()
    row = {"row": "flops", "size": size, "tile": tile, "windows": len(boxes)}
    row.update({f"{n}_kflop_per_px": round(v / px / 1e3, 1) for n, v in counts.items()})
    return row


def _core(model: Any, net: Any, x: torch.Tensor) -> Any:
    """The network as the pipeline calls it, where the code has that call (older code: the whole window)."""
    try:
        from napari_selfsup_denoise.engine.nets.core import core_forward
    except ImportError:
        return net(x)
    return core_forward(net, x, model.margin)
