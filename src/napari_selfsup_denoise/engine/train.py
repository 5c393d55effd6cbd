"""The training loop: a generator that yields progress and returns a :class:`Model`."""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Generator
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch

from ..axes import guess_axes, spatial_ndim, validate_axes
from ..config import ResolvedConfig, TrainConfig, resolve_defaults
from ..defaults import AUTO, algorithm_choice
from ._abort import Stopped, cut_event, step_or_stop, watch
from ._check_pick import check_best, chooses_on_crops
from ._ema import WeightAverage
from ._fast_conv import reuse_freed_memory
from ._schedule import Schedule, ShortRunWarning, plan, run_notes, schedule_for
from ._step import LowWeights, make_optimiser, optimiser_step, read_pending, train_batch, validate
from ._training import Preview, RunState, choose_patch, ended_early, group_rate, preview_now
from .arrays import canonical
from .checks import check_training
from .data import DataError, Normalisation, PatchSampler, check_finite, fit_normalisation
from .device import configure_threads, describe, pick_device, resolve_precision
from .events import TrainProgress
from .methods import get_method
from .model import Model, training_sample
from .route import CorrelatedNoiseWarning, Route, route, start_after
from .start import InitialWeights, start_record

VAL_EVERY = 50
# Patches in the validation batch: 16, or 4 training batches if fewer (3D blind-spot, batch 2: 8 patches of
# 32x40x40; 16 cost 2.8 training steps after every Stop; issue 10 item 13).
VAL_PATCHES, VAL_BATCHES = 16, 4
NOISE_EVERY = 10  # the noise model's parameters are read with the loss, once in this many steps
# Steps between reads of the loss and gradient norms (each read waits for the device); 1 where that costs nothing.
# The progress events in between carry the last loss read; non-finite steps are skipped on the device regardless.
SYNC_EVERY = {"cuda": 10}
MAX_BAD_STEPS = 5
# Edge of the training-image crop a model keeps for BMZ test tensors (2D, 3D); at least the smallest exported tile.
SAMPLE_EDGE = {2: 64, 3: 32}
MIN_TRAIN_EDGE = 16  # the smallest patch any network takes (choose_patch asks more of deeper ones)


def _prepare(image: Any, cfg: TrainConfig, target: Any, init: Model | None) -> tuple[Any, Any, str, Normalisation]:
    axes = validate_axes(cfg.axes or guess_axes(image.shape), len(image.shape))
    canon = canonical(image, axes)
    y_size, x_size = canon.shape[4:]
    if int(np.prod(canon.shape)) == 0:
        raise DataError(f"the image is empty (shape {tuple(image.shape)})")
    if min(y_size, x_size) < MIN_TRAIN_EDGE:  # before the statistics: a 1-pixel image is "too small", not "constant"
        raise DataError(f"the image's Y, X extent ({y_size} x {x_size}) is too small to train on: it needs at "
                        f"least {MIN_TRAIN_EDGE} x {MIN_TRAIN_EDGE} pixels")  # fmt: skip
    check_finite(canon)
    tcanon = None
    if target is not None:
        if tuple(target.shape) != tuple(image.shape):
            raise DataError(f"the target's shape {tuple(target.shape)} differs from the input's {tuple(image.shape)}")
        tcanon = canonical(target, axes)
        check_finite(tcanon)
    elif cfg.algorithm == "n2n":
        raise DataError("Noise2Noise needs a target: a second noisy acquisition of the same field")
    if init is not None:
        init.check_channels(canon.shape[2])
        return canon, tcanon, axes, init.norm
    return canon, tcanon, axes, fit_normalisation(canon, cfg.normalisation, cfg.percentiles)


def train(
    image: Any,
    config: TrainConfig | None = None,
    *,
    stop: threading.Event | None = None,
    target: Any = None,
    preview: Preview | np.ndarray | None = None,
    init: Model | None = None,
    start: InitialWeights | None = None,
    routed: Route | None = None,
) -> Generator[TrainProgress, None, Model]:
    """Train a denoiser on ``image``; yield :class:`TrainProgress` per step, return a :class:`Model`.

    Parameters
    ----------
    image : array-like
        The noisy data (numpy, zarr or dask), axes as ``config.axes`` (guessed if None).
    config : TrainConfig, optional
        Algorithm, budgets and hyper-parameters.
    stop : threading.Event, optional
        Set it to end training: the step in progress ends inside its forward or backward pass and is
        discarded (no update from it); a usable model is still returned. The last event then has
        ``phase="checking"`` (as at every end of training): the final validation and self-check follow.
    target : array-like, optional
        Second noisy acquisition for Noise2Noise (same shape as ``image``).
    preview : callable or array, optional
        An image (or a function returning one, or None) in the training axes
        without S/T, denoised every ``config.preview_every_s`` seconds into
        ``TrainProgress.preview``.
    init : Model, optional
        Continue training (fine-tune) this model instead of starting afresh (``algorithm="auto"`` then
        means the model's algorithm).
    start : InitialWeights, optional
        Network weights to start from (e.g. the built-in prior, :mod:`napari_selfsup_denoise.prior`); the
        noise model is still fitted to ``image``. Ignored with ``init``. Recorded in ``summary["start"]``.
    routed : Route, optional
        A front end's :func:`~.route.route_for` on this ``image``: its noise measurement is reused, not
        measured again; what runs and why still follow from ``config`` (measured here when absent).
    """
    cfg = config or TrainConfig()
    if init is not None and cfg.algorithm == AUTO:  # continuing a model: its algorithm, whatever auto would pick
        cfg = cfg.replace(algorithm=init.config.algorithm)
    asked, typed_lr = cfg.algorithm, None if isinstance(cfg, ResolvedConfig) else cfg.learning_rate
    canon, tcanon, axes, norm = _prepare(image, cfg, target, init)
    ndim, device = spatial_ndim(axes), pick_device(cfg.device)
    measured = routed.correlation if routed is not None else None
    routed = route(cfg.replace(axes=axes), canon, ndim, measured) if init is None else Route(cfg.replace(axes=axes))
    if routed.warning:  # an explicit choice that leaves correlated noise unmasked: kept, and said before training
        warnings.warn(routed.warning, CorrelatedNoiseWarning, stacklevel=2)
    cfg = resolve_defaults(routed.config, ndim, device.type)  # the one place unset fields are filled in
    configure_threads()
    dtype = resolve_precision(cfg.precision, device)
    if cfg.seed is not None:
        torch.manual_seed(cfg.seed)
    method = get_method(cfg)
    net = init.net if init is not None else method.build(ndim, canon.shape[2])
    if init is None:
        start = start_after(start, cfg.algorithm, net) if asked == AUTO else start  # auto may pick another net
        if start is not None:
            start.load_into(net)
        method.prepare(net, canon, norm)  # e.g. start a noise model from the image
    net = net.to(device)
    if ndim == 2:
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    min_edge = int(getattr(net, "min_patch", 0))
    patch = choose_patch(cfg, canon.shape[3:], ndim, int(net.multiple), min_edge)  # type: ignore[arg-type]
    turns = cfg.algorithm == "structn2v" and (ndim == 2 or cfg.struct_axis.upper() != "Z")  # Y must stay Y
    sampler = PatchSampler(canon, norm, patch, np.random.default_rng(cfg.seed), cfg.val_fraction, cfg.augment,
                           tcanon, device=device, half_turns=turns)  # fmt: skip
    opt = make_optimiser(method, net, cfg.learning_rate, device)
    model = Model(net, cfg, axes, ndim, canon.shape[2], norm, method=method)
    model.sample = training_sample(canon, ndim, max(SAMPLE_EDGE[ndim], 2 * model.margin + model.multiple))
    mask_device = device if device.type == "cuda" else torch.device("cpu")  # N2V masks drawn where they are used
    gen, st = torch.Generator(mask_device).manual_seed(cfg.seed or 0), RunState()
    if sampler.has_validation and (init is not None or (start is not None and start.state is not None)):
        _track_val(model, sampler, st)  # the weights it starts from are a candidate: a short, hot run cannot lose them
    net.train()
    # on the CPU the steps' feature maps reuse freed host memory (no page faults per step); the timed probe too
    with reuse_freed_memory() if device.type == "cpu" else nullcontext():
        try:
            with watch(net, cut_event(net, stop)):
                sched = schedule_for(model, sampler, dtype, st, stop, mask_device, VAL_EVERY)
        except Stopped:  # Stop during the timed probe (a copy of the network): the run itself is untouched
            sched, st.stopped = plan(cfg, None, 0.0), "stopped"
        st.last_preview = st.elapsed()  # previews are spaced from the first step (a 3D probe outlasts preview_every_s)
        notes = [] if st.stopped == "stopped" else run_notes(sched, ndim, device.type, typed_lr)
        for note in notes:  # said before the run, and kept in the summary (the widget shows its message)
            warnings.warn(note, ShortRunWarning, stacklevel=2)
        st.average = WeightAverage(net, cfg.ema_decay) if cfg.ema_decay > 0 else None  # updated by optimiser_step
        while st.step < sched.total and st.stopped != "stopped":
            if stop is not None and stop.is_set():
                st.stopped = "stopped"
                break
            if cfg.max_seconds is not None and st.elapsed() >= cfg.max_seconds:
                break
            ev = step_or_stop(
                model, opt, st, stop, lambda: _one_step(model, opt, sampler, gen, dtype, st, preview, stop, sched)
            )
            if ev is None:  # Stop inside the step: it was abandoned (or, after its update, its preview)
                break
            yield ev
            if (ending := ended_early(st, MAX_BAD_STEPS)) is not None:  # diverged, or no longer improving
                st.stopped, st.message = ending
                break
    read_pending(st)  # the steps since the last read
    LowWeights.release(net)
    yield _ended(st, sched)  # the final validation and the self-check follow
    model = _finish(model, sampler, st)
    model.summary["planned_steps"], model.summary["replans"] = sched.total, sched.replans
    model.summary["message"] = ". ".join(m for m in (routed.warning, *notes, model.summary["message"]) if m)
    model.summary["start"] = start_record(start, init is not None)
    if asked == AUTO:
        model.summary["algorithm_choice"] = routed.choice or algorithm_choice(asked, ndim)
    return model


def _ended(st: RunState, sched: Schedule) -> TrainProgress:
    """The event that says training has ended and the final validation and self-check run now."""
    return TrainProgress(
        step=st.step, total=st.step, loss=st.loss, val_loss=st.val_loss, elapsed=st.elapsed(), eta=0.0,
        steps_per_s=st.rate, lr=sched.lr(max(st.step - 1, 0)), message=st.message, phase="checking",
    )  # fmt: skip


def _one_step(
    model: Model,
    opt: torch.optim.Optimizer,
    sampler: PatchSampler,
    gen: torch.Generator,
    dtype: torch.dtype,
    st: RunState,
    preview: Preview | np.ndarray | None,
    stop: threading.Event | None,
    sched: Schedule,
) -> TrainProgress:
    cfg, net, device = model.config, model.net, next(model.net.parameters()).device
    ts = st.elapsed()
    lr = sched.lr(st.step)  # step-based: the clock only sets the run's length (see _schedule)
    for g in opt.param_groups:  # a group with its own rate (the noise model) is not raised with the batch
        g["lr"] = group_rate(cfg, lr, g["lr_scale"], sched.peak) if "lr_scale" in g else lr
    batch = train_batch(sampler, cfg.batch_size, model.ndim == 2, device)
    optimiser_step(model.method, net, opt, batch, gen, dtype, st)
    st.step += 1
    if st.step % SYNC_EVERY.get(device.type, 1) == 0 or st.step == sched.total:
        read_pending(st)
        if st.step // NOISE_EVERY > st.noise_step // NOISE_EVERY:  # read with the loss: no second wait
            st.noise, st.noise_step = model.method.state(net, model.norm.scale) or None, st.step
    dt = max(st.elapsed() - ts, 1e-9)
    st.rate = 1 / dt if st.rate == 0 else 0.9 * st.rate + 0.1 / dt
    if sampler.has_validation and (st.step % VAL_EVERY == 0 or st.step == sched.total):
        _track_val(model, sampler, st)
    el = st.elapsed()
    sched.follow(st.step, el)
    total = sched.total
    if cfg.max_seconds is not None:
        total = min(total, st.step + int(st.rate * max(0.0, cfg.max_seconds - el)))
    pv = None
    stopping = stop is not None and stop.is_set()  # Stop pressed during the step: no preview, end now
    if preview is not None and not stopping and el - st.last_preview >= cfg.preview_every_s:
        pv, st.last_preview = preview_now(model, preview, device), el
    if st.noise_step == 0:  # the first step: a read of the device (the later ones follow the loss's reads)
        st.noise, st.noise_step = model.method.state(net, model.norm.scale) or None, st.step
    return TrainProgress(
        step=st.step, total=max(total, st.step), loss=st.loss, val_loss=st.val_loss, elapsed=el,
        eta=(total - st.step) / max(st.rate, 1e-9), steps_per_s=st.rate, lr=lr, preview=pv, noise=st.noise,
    )  # fmt: skip


def _track_val(model: Model, sampler: PatchSampler, st: RunState) -> None:
    sq = model.ndim == 2
    device = next(model.net.parameters()).device
    t0 = st.elapsed()
    size = min(VAL_PATCHES, VAL_BATCHES * model.config.batch_size)
    with st.average.applied(model.net) if st.average is not None else nullcontext():  # the average is the candidate
        st.val_loss = validate(model.method, model.net, sampler, sq, device, size)
        if st.val_loss < st.best:
            st.best, st.best_step = st.val_loss, st.step
            st.best_state = {k: v.detach().clone() for k, v in model.net.state_dict().items()}
    st.val_s, st.val_step = st.elapsed() - t0, st.step


def _finish(model: Model, sampler: PatchSampler, st: RunState) -> Model:
    """Restore the best-validation weights and fill in the summary."""
    # Not again when the last step was just validated (a step budget's end); after a Stop, only to choose
    # between candidates: with none validated yet the current weights are returned whatever their loss.
    again = st.val_step != st.step and (st.stopped != "stopped" or st.best_state is not None)
    picked = check_best(model, sampler, st) if chooses_on_crops(model, st) else None  # 2 checks, no validation
    if sampler.has_validation and st.step > 0 and st.stopped != "diverged" and again and picked is None:
        _track_val(model, sampler, st)
    if st.best_state is not None:
        model.net.load_state_dict(st.best_state)
        if st.best_step == 0 and st.step > 0 and not st.message:
            st.message = "training did not improve on the starting weights (validation loss), so they were kept"
    elif st.stopped == "diverged":
        raise DataError("training diverged before any usable weights; lower the learning rate")
    model.net.eval()
    device = next(model.net.parameters()).device
    model.summary = {
        "steps": st.step,
        "seconds": round(st.elapsed(), 2),
        "ended_by": st.stopped,
        "best_val_loss": None if math.isinf(st.best) else st.best,
        "patch": list(sampler.patch[3 - model.ndim :]),
        "device": describe(device, resolve_precision(model.config.precision, device)),
        "message": st.message,
        "best_step": st.best_step if st.best_state is not None else None,  # the validation's pick (0: the start)
        **model.method.state(model.net, model.norm.scale),
        "self_check": (check_training(model, sampler) if picked is None else picked).to_dict(),
    }
    return model
