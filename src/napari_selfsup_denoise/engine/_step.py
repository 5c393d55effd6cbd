"""One optimiser step of the training loop, reading its losses, and the validation loss."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from ._training import RunState, clip_gradients, record_norms
from .data import PatchSampler
from .device import autocast
from .methods import Method

# On the CPU a large batch runs in chunks of this many patches, gradients accumulated (activations stay in cache).
CPU_CHUNK = 32


def validate(
    method: Method, net: nn.Module, sampler: PatchSampler, squeeze: bool, device: torch.device, size: int = 16
) -> float:
    """The loss on the sampler's fixed validation batch of ``size`` patches (eval mode, a fixed masking seed)."""
    x, t = sampler.val_batch(size)
    x, t = to_device(x, squeeze, device), (None if t is None else to_device(t, squeeze, device))
    net.eval()
    with torch.no_grad():
        loss = float(method.loss(net, x, t, torch.Generator().manual_seed(7)))
    net.train()
    return loss


def to_device(x: torch.Tensor, squeeze: bool, device: torch.device) -> torch.Tensor:
    """A batch in the network's layout (2D: the singleton depth dropped, channels-last) on ``device``."""
    x = x[:, :, 0] if squeeze else x
    if x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x.to(device, non_blocking=True)


def optimiser_step(
    method: Method,
    net: nn.Module,
    opt: torch.optim.Optimizer,
    batch: tuple[torch.Tensor, torch.Tensor | None],
    gen: torch.Generator,
    dtype: torch.dtype,
    st: RunState,
) -> torch.Tensor:
    """One optimiser step without waiting for the device; returns the loss (a tensor), also kept in ``st.pending``.

    A non-finite loss skips the update on the device (fused Adam's ``found_inf``: weights, moments and
    step count stay as they were; an optimiser without it reads the loss now) and is counted when the
    step is read (:func:`read_pending`). On the CPU a large batch is run in chunks of :data:`CPU_CHUNK` with
    gradients accumulated: the same update, with activations small enough to stay in cache.
    """
    x, t = batch
    n = x.shape[0]
    size = CPU_CHUNK if x.device.type == "cpu" and n > CPU_CHUNK else n
    opt.zero_grad(set_to_none=True)
    total = _losses(method, net, x, t, gen, dtype, size)
    norms = clip_gradients([g["params"] for g in opt.param_groups], st, record=False)
    found = (total * 0).ne_(0)  # 1.0 where the loss is NaN or infinite (inf * 0 is NaN), else 0.0
    if opt.defaults.get("fused"):
        opt.found_inf = found  # type: ignore[attr-defined]  # read by the fused step, on the device
        opt.step()
    elif not bool(found):
        opt.step()
    method.after_step(net)
    if st.average is not None:  # the weights' moving average (TrainConfig.ema_decay)
        st.average.update(net)
    st.pending.append(torch.cat([total.view(1), norms.to(total.device)]))  # a group without grads: 0
    return total


def _losses(
    method: Method,
    net: nn.Module,
    x: torch.Tensor,
    t: torch.Tensor | None,
    gen: torch.Generator,
    dtype: torch.dtype,
    size: int,
) -> torch.Tensor:
    """The batch's loss (float32, detached) after its backward pass, in chunks of ``size`` patches."""
    n = x.shape[0]
    if size >= n:  # one pass: no accumulator and no scaling (the same values, fewer device operations)
        low = LowWeights.of(net, dtype) if dtype != torch.float32 else None
        with low.applied() if low is not None else nullcontext(), autocast(x.device, dtype):
            loss = method.loss(net, x, t, gen)
        loss.backward()
        if low is not None:
            low.grads_back()
        return loss.detach().float()
    total = torch.zeros((), device=x.device)
    for i in range(0, n, size):
        xc, tc = x[i : i + size], None if t is None else t[i : i + size]
        with autocast(x.device, dtype):
            loss = method.loss(net, xc, tc, gen) * (xc.shape[0] / n)
        loss.backward()
        total = total + loss.detach().float()
    return total


class LowWeights:
    """Low-precision copies of a network's convolution weights for autocast steps, cast in one operation each way.

    Autocast casts every weight at its first use in a step and casts its gradient back in the backward pass:
    two device operations per weight and step (54 for the default 2D blind-spot network). Here the weights
    are cast by one foreach copy before the forward pass and their gradients by one after the backward pass:
    the same numbers (a cast of the same values; each gradient is summed in the low precision, then cast).
    Only the weights of convolutions and linear layers, which autocast runs in the low precision.
    """

    def __init__(self, net: nn.Module, dtype: torch.dtype) -> None:
        kinds = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
        self.slots = [
            (m, name, p)
            for m in net.modules()
            if isinstance(m, kinds)
            for name, p in m._parameters.items()
            if p is not None and p.requires_grad
        ]
        self.low = [torch.empty_like(p, dtype=dtype).requires_grad_() for *_, p in self.slots]
        self.dtype = dtype

    @classmethod
    def of(cls, net: nn.Module, dtype: torch.dtype) -> LowWeights | None:
        """The network's copies (made at its first autocast step, and again when its weights were replaced).

        None when a weight is shared by two layers (its gradient would come in two parts): autocast then casts.
        """
        low = net.__dict__.get("_low_weights")
        if low is None or low.dtype != dtype or any(m._parameters[n] is not p for m, n, p in low.slots):
            low = net.__dict__["_low_weights"] = cls(net, dtype)
        return low if len({id(p) for *_, p in low.slots}) == len(low.slots) else None

    @staticmethod
    def release(net: nn.Module) -> None:
        """Drop the network's copies (at the end of training)."""
        net.__dict__.pop("_low_weights", None)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Inside the block the convolutions use the copies (cast from the weights as they are now)."""
        with torch.no_grad():
            torch._foreach_copy_(self.low, [p for *_, p in self.slots])
        for (m, name, _), t in zip(self.slots, self.low):
            t.grad = None
            m._parameters[name] = t  # type: ignore[assignment]
        try:
            yield
        finally:
            for m, name, p in self.slots:
                m._parameters[name] = p

    def grads_back(self) -> None:
        """The copies' gradients, cast to the weights' precision, become the weights' gradients (one operation)."""
        pairs = [(p, t.grad) for (*_, p), t in zip(self.slots, self.low) if t.grad is not None]
        for p, _ in pairs:
            p.grad = torch.empty_like(p)
        torch._foreach_copy_([p.grad for p, _ in pairs], [g for _, g in pairs])  # type: ignore[misc]


def read_pending(st: RunState) -> None:
    """Read the losses and gradient norms of the steps not read yet (one wait for the device)."""
    if not st.pending:
        return
    rows = torch.stack(st.pending).tolist()
    st.pending.clear()
    for loss, *norms in rows:
        st.loss = loss
        if math.isfinite(loss):
            st.bad = 0
            record_norms(st, norms)
        else:
            st.bad += 1


def make_optimiser(method: Method, net: nn.Module, lr: float, device: torch.device) -> torch.optim.Optimizer:
    """Adam over the method's parameter groups (fused where the device has it)."""
    return torch.optim.Adam(method.param_groups(net, lr), fused=device.type in ("cpu", "cuda"))


def train_batch(
    sampler: PatchSampler, size: int, squeeze: bool, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The sampler's next training batch (and Noise2Noise target) in the network's layout on ``device``."""
    x, t = sampler.batch(size)
    return to_device(x, squeeze, device), None if t is None else to_device(t, squeeze, device)
