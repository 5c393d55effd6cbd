"""Argument parsers of ``selfsup-denoise`` (every option is explained in ``--help``)."""

from __future__ import annotations

import argparse
import re
from collections import Counter

from ..batch import FORMATS
from ..config import ALGORITHM_DEFAULTS, ALGORITHMS, MIN_TILE
from ..defaults import AUTO_PICKS

_EPILOG = """\
INPUT is a TIFF file (.tif/.tiff, ImageJ or OME), a Zarr array (store.zarr or
store.zarr/array), an OME-Zarr image (its full-resolution level is read), a
directory (its TIFF files and Zarr stores) or a quoted glob ('raw/*.tif').
Exit codes: 0 all done, 1 some inputs failed, 2 bad arguments or input,
3 stopped (resumable), 4 a self-check failed (see --accept-suspect),
130 interrupted. See docs/cli.md for examples.
"""


def _positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return v


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds >= 0 (0 = no time limit, steps only), got {text}")
    return v


def _tile(text: str) -> int:
    v = _positive_int(text)
    if v < MIN_TILE:
        raise argparse.ArgumentTypeError(
            f"--tile {v} is below {MIN_TILE}: every tile recomputes the model's margin around it, so tiny tiles "
            f"run many times slower; give >= {MIN_TILE} or leave it out (chosen from free memory)"
        )
    return v


def _local_workers(text: str) -> int:
    m = re.fullmatch(r"local:(\d+)", text.strip())
    if not m or int(m.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"expected local:N with N >= 1 (e.g. local:4), got {text!r}")
    return int(m.group(1))


def per_algorithm_default(name: str) -> str:
    """``default 16; blindspot 2D: 4, blindspot 3D: 2``: a field's defaults from ``config.ALGORITHM_DEFAULTS``."""
    values = {(a, nd): table[name] for a, by_nd in ALGORITHM_DEFAULTS.items() for nd, table in by_nd.items()}
    common = Counter(values.values()).most_common(1)[0][0]
    others = [f"{a} {nd}D: {v:g}" for (a, nd), v in values.items() if v != common]
    return f"default {common:g}" + (f"; {', '.join(others)}" if others else "")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--axes", help="axes of the input, letters of STCZYX (e.g. ZYX, TYX, CYX); read from the file "
                   "(ImageJ/OME/NGFF metadata) or guessed from the shape when omitted")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true", help="show the full traceback of unexpected errors")
    p.add_argument("--accept-suspect", action="store_true",
                   help="write the output even when a self-check fails (its metadata records the failure); "
                   "without it a failed check writes nothing and exits with code 4")  # fmt: skip


def _train_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--algorithm", default="auto", choices=ALGORITHMS,
                   help=f"auto (default: {AUTO_PICKS[2][0]} for 2D images, {AUTO_PICKS[3][0]} for 3D; the run says "
                   "which and why), n2v, n2v2, structn2v (correlated noise along --set struct_axis=X), "
                   "blindspot (mean + variance with a noise model), n2n (needs --target)")  # fmt: skip
    g.add_argument("--max-seconds", type=_seconds, default=None,
                   help="training time budget in seconds (default 300; 0 = no time limit, steps only)")  # fmt: skip
    g.add_argument("--steps", type=_positive_int, default=None, help="optimiser steps budget (default 4000); "
                   "training ends at whichever budget comes first")  # fmt: skip
    g.add_argument("--patch-size", type=_positive_int, default=None,
                   help="training patch edge in Y/X, a multiple of 8, clipped to the image "
                   f"({per_algorithm_default('patch_size')})")  # fmt: skip
    g.add_argument("--batch-size", type=_positive_int, default=None,
                   help=f"patches per step ({per_algorithm_default('batch_size')})")  # fmt: skip
    g.add_argument("--noise-model", default=None,
                   help="blindspot only: auto (default), gaussian, poisson-gaussian or known:SIGMA "
                   "(SIGMA in the image's intensity units)")  # fmt: skip
    g.add_argument("--start-from", default=None, metavar="builtin|random|MODEL",
                   help="the network's starting weights: builtin (default; the built-in prior, fine-tuned on your "
                   "image: blindspot only, other algorithms start from random weights), random, or MODEL (a "
                   ".sdmodel file of the same algorithm and network shape, fine-tuned)")  # fmt: skip
    g.add_argument("--target", nargs="+", default=None, metavar="TARGET",
                   help="n2n only: second noisy acquisition(s) of the field, one per INPUT, same shapes")  # fmt: skip
    g.add_argument("--seed", type=int, default=None, help="random seed (default 0; runs on CPU are reproducible)")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other training option by its TrainConfig name, e.g. --set depth=2 "
                   "--set base_channels=16 --set learning_rate=0.002 (repeatable; see docs/cli.md); "
                   f"depth {per_algorithm_default('depth')}; base_channels "
                   f"{per_algorithm_default('base_channels')}")  # fmt: skip


def _denoise_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("denoising")
    g.add_argument("--tile", type=_tile, default=None,
                   help=f"tile and output-chunk edge in pixels, >= {MIN_TILE} (rounded down to the network's "
                   "multiple); "
                   "default: from free memory, at most 512 (2D) or 64 (3D)")  # fmt: skip
    g.add_argument("--tta", action="store_true", help="average 8 rotations/flips (8x slower, slightly better)")
    # Removed until calibrated (issue 10, item 9): still parsed, so that old scripts get a plain error.
    g.add_argument("--uncertainty", action="store_true", help=argparse.SUPPRESS)
    g.add_argument("--prior", action="store_true",
                   help="blindspot only: write the network's prior mean instead of the posterior mean")  # fmt: skip
    g.add_argument("--format", dest="fmt", choices=FORMATS, default=None,
                   help="output format (default: the input's; OME-Zarr outputs get downsampled levels)")  # fmt: skip
    g.add_argument("--dtype", choices=("float32", "input"), default="float32",
                   help="output data type: float32 (default) or the input's (rounded and clipped)")  # fmt: skip
    g.add_argument("--levels", type=_positive_int, default=None,
                   help="OME-Zarr outputs: resolution levels (default: as the input, else to ~256 px)")  # fmt: skip
    g.add_argument("--overwrite", action="store_true", help="replace outputs that exist (inputs are never written)")
    g.add_argument("--resume", action="store_true",
                   help="continue unfinished outputs from their completed chunks; skip complete ones")  # fmt: skip
    d = g.add_mutually_exclusive_group()
    d.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="run chunks on an existing dask.distributed scheduler, e.g. tcp://host:8786 "
                   "(inputs, outputs and the model must be on storage the workers share)")  # fmt: skip
    d.add_argument("--dask", dest="dask_local", type=_local_workers, default=None, metavar="local:N",
                   help="run chunks on a local dask cluster of N worker processes")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The ``selfsup-denoise`` parser with its five sub-commands."""
    from .. import __version__
    from ._export import add_export_parser

    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="selfsup-denoise",
        description="Self-supervised denoising (Noise2Void family, blind-spot, Noise2Noise) without clean data.",
        epilog=_EPILOG,
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,denoise,run,info,export}")
    t = sub.add_parser("train", help="train a model on noisy images", epilog=_EPILOG, formatter_class=fmt)
    t.add_argument("inputs", nargs="+", metavar="INPUT", help="noisy image(s) to train on (several are stacked)")
    t.add_argument("-o", "--output", required=True, metavar="MODEL", help="model file to write (.sdmodel)")
    t.add_argument("--overwrite", action="store_true", help="replace the model file if it exists")
    _common(t)
    _train_options(t)
    d = sub.add_parser("denoise", help="denoise images with a trained model", epilog=_EPILOG, formatter_class=fmt)
    d.add_argument("-m", "--model", required=True, metavar="MODEL",
                   help="model file written by train or run, or 'builtin': zero-shot denoising with the built-in "
                   "prior and a noise model fitted to each input (no training; seconds)")  # fmt: skip
    d.add_argument("--noise-model", default=None,
                   help="--model builtin only: auto (default), gaussian, poisson-gaussian or known:SIGMA")  # fmt: skip
    d.add_argument("inputs", nargs="+", metavar="INPUT", help="image(s) to denoise")
    d.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                   help="output file/store for one input; a directory for several (names kept)")  # fmt: skip
    _common(d)
    _denoise_options(d)
    r = sub.add_parser("run", help="train on the input(s), then denoise them", epilog=_EPILOG, formatter_class=fmt)
    r.add_argument("inputs", nargs="+", metavar="INPUT", help="noisy image(s): trained on, then denoised")
    r.add_argument("-o", "--output", required=True, metavar="OUTPUT", help="as for denoise")
    r.add_argument("--save-model", default=None, metavar="MODEL", help="also keep the trained model in this file")
    _common(r)
    _train_options(r)
    _denoise_options(r)
    i = sub.add_parser("info", help="show what a model file holds", formatter_class=fmt)
    i.add_argument("model", metavar="MODEL",
                   help="a .sdmodel file, a BMZ package exported by this tool, or 'builtin' "
                   "(the built-in prior)")  # fmt: skip
    i.add_argument("--json", action="store_true", help="print the model's JSON metadata")
    i.add_argument("--debug", action="store_true", help="show the full traceback of unexpected errors")
    add_export_parser(sub)
    return parser
