"""The README and the citations of an exported package."""

from __future__ import annotations

from typing import Any

from ..engine.model import Model
from ._trust import exported_output, readme_section

# (text, DOI) per algorithm; the DOIs of the papers that define what the package computes.
REFERENCES: dict[str, list[tuple[str, str]]] = {
    "n2v": [("Krull, Buchholz and Jug (2019). Noise2Void - learning denoising from single noisy images. CVPR.",
             "10.1109/cvpr.2019.00223")],
    "n2v2": [("Hoeck, Buchholz, Brachmann, Jug and Freytag (2022). N2V2 - fixing Noise2Void checkerboard artifacts "
              "with modified sampling strategies and a tweaked network architecture. ECCV workshops.",
              "10.1007/978-3-031-25069-9_33")],
    "structn2v": [("Broaddus, Krull, Weigert, Schmidt and Myers (2020). Removing structured noise with "
                   "self-supervised blind-spot networks. ISBI.", "10.1109/isbi45749.2020.9098336")],
    "blindspot": [("Laine, Karras, Lehtinen and Aila (2019). High-quality self-supervised deep image denoising. "
                   "NeurIPS.", "10.48550/arXiv.1901.10277")],
    "n2n": [("Lehtinen, Munkberg, Hasselgren, Laine, Karras, Aittala and Aila (2018). Noise2Noise: learning image "
             "restoration without clean data. ICML.", "10.48550/arXiv.1803.04189")],
}  # fmt: skip

_WHAT = {
    "n2v": "a Noise2Void U-Net (masked pixels replaced by a random neighbour, loss on the masked pixels)",
    "n2v2": "an N2V2 U-Net (median replacement, max-blur pooling, no top skip connection)",
    "structn2v": "a structN2V U-Net (a line mask against noise that is correlated along one axis)",
    "blindspot": "a blind-spot network (Laine et al. 2019) with a fitted noise model",
    "n2n": "a Noise2Noise U-Net (trained on two noisy acquisitions of the same field)",
}

DISPLAY = {"n2v": "N2V", "n2v2": "N2V2", "structn2v": "structN2V", "blindspot": "Blind-spot", "n2n": "Noise2Noise"}
_RETURNS = {
    "posterior": "; the exported module returns the posterior mean, which combines the network's prediction from "
    "the surroundings with the pixel's own value",
    "prior": "; the exported module returns the network's prior mean, its prediction from the surroundings alone, "
    "which the model's self-check chose over the posterior (see Self-check)",
}
_NOISE_KEYS = ("noise_model", "noise_sigma", "classical_sigma", "noise_a", "noise_b", "classical_a", "classical_b")


def default_name(model: Model) -> str:
    """The package name used when none is given, e.g. ``N2V 2D denoiser (napari-selfsup-denoise)``."""
    return f"{DISPLAY[model.algorithm]} {model.ndim}D denoiser (napari-selfsup-denoise)"


def _what(model: Model) -> str:
    """What the package computes, in one clause."""
    return _WHAT[model.algorithm] + (_RETURNS[exported_output(model)] if model.algorithm == "blindspot" else "")


def readme(model: Model, name: str, description: str, tile: dict[str, Any]) -> str:
    """Markdown README: what the model is, how it was trained, how to run it, and its limits."""
    s, c = model.summary, model.config
    noise = [f"  - `{k}`: {s[k]}" for k in _NOISE_KEYS if k in s]
    lines = [
        f"# {name}",
        "",
        description,
        "",
        "## What it is",
        f"A self-supervised denoiser for {model.ndim}D images with {model.channels} channel(s) "
        f"(training axes `{model.axes}`): {_what(model)}. It was trained on the noisy image alone, "
        "without clean data, with napari-selfsup-denoise.",
        "",
        "## How it was trained",
        f"- algorithm: `{model.algorithm}`; steps: {s.get('steps')} ({s.get('seconds')} s on {s.get('device')}), "
        f"ended by: {s.get('ended_by')}; budget: {c.max_steps} steps, "
        f"{'no time limit' if c.max_seconds is None else f'{c.max_seconds} s'}",
        f"- network: depth {c.depth}, {c.base_channels} base channels; patches {c.patch_size} px, "
        f"batch {c.batch_size}, learning rate {c.learning_rate}",
        f"- normalisation ({model.norm.method}): offset {list(model.norm.offset)}, scale {list(model.norm.scale)}; "
        "applied as pre-processing, inverted as post-processing",
        f"- best validation loss: {s.get('best_val_loss')}",
        *(["- fitted noise model (image intensity units):", *noise] if noise else []),
        "",
        "## How to run it",
        f"Inputs are float32 `(batch, channel, {', '.join(tile['axes'])})`. Tiles must be "
        f"{tile['min']} + n * {tile['step']} pixels per spatial axis including a halo of {tile['halo']} pixels per "
        "side (reflect padding at the image border); tiles predicted that way meet without seams.",
        "",
        "## Validation",
        "The package's test output is napari-selfsup-denoise's own prediction on the test input; the export "
        "refuses to write a package whose weights do not reproduce it. The network was validated on a held-out "
        f"share ({c.val_fraction:.0%}) of the training image's patches only: there is no clean reference.",
        "",
        *readme_section(model),
        "## Limits",
        "- It denoises images like the one it was trained on (same microscope, stain, noise and intensity range); "
        "on other data the result can look plausible and still be wrong.",
        "- Self-supervised denoisers remove noise that is independent from pixel to pixel"
        + (" (structN2V: except along its mask axis)" if model.algorithm == "structn2v" else "")
        + "; correlated noise and structured artefacts stay.",
        "- A denoised image is an estimate: do not count or measure what is visible only after denoising.",
        *(
            ["- The noise model was fitted to the training image; a different gain or offset needs a new model."]
            if model.algorithm == "blindspot"
            else []
        ),
    ]
    return "\n".join(lines) + "\n"
