"""Denoise many files, or stacks larger than memory, chunk by chunk; resumable; dask when asked.

Each input is split into work units that are exactly the output's Zarr chunks
(one sample and time point, all channels, ``tile`` pixels per spatial axis).
A unit is predicted with :func:`engine.predict.predict` over that region; the
engine reads the model's margin around it from the input (mirrored at the
image border), so units are independent and the result does not depend on
how they are scheduled. Units stream from the input store into the output
store, one at a time per worker, so memory does not grow with the stack.

Modules, each importing only those before it: :mod:`.plan` (options, results,
output names, work units), :mod:`.store` (create, resume and finish outputs),
:mod:`.outputs` (the outputs of each input), :mod:`.ahead` (the self-check beside the first units),
:mod:`.local` (run units here), :mod:`.distributed` (run units on dask), :mod:`.runner` (one input after another).
"""

from .plan import FORMATS, BatchOptions, Interrupted, Reporter, Result, guess_format, output_path, tagged
from .runner import EXPECTED_ERRORS, FileRunner, check_outputs, denoise_files
from .store import OutputError

__all__ = [
    "EXPECTED_ERRORS",
    "FORMATS",
    "BatchOptions",
    "FileRunner",
    "Interrupted",
    "OutputError",
    "Reporter",
    "Result",
    "check_outputs",
    "denoise_files",
    "guess_format",
    "output_path",
    "tagged",
]
