"""``selfsup-denoise export``: a model file as a BioImage Model Zoo package."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    """The ``export`` sub-command and its options."""
    e = sub.add_parser("export", help="write a model as a BioImage Model Zoo package (.zip)",
                       description="Write MODEL as a BioImage Model Zoo package that bioimageio.core, deepImageJ, "
                       "ilastik and CAREamics can run; needs the [bmz] extra. See docs/sharing.md.")  # fmt: skip
    e.add_argument("model", metavar="MODEL", help="a .sdmodel file (or a package exported earlier)")
    e.add_argument("-o", "--output", required=True, metavar="NAME.zip", help="package to write (.zip is added)")
    e.add_argument("--name", default=None, help="model name: 5-128 letters, digits, spaces and _+-() (default: "
                   "algorithm and dimensions, e.g. 'N2V 2D denoiser (napari-selfsup-denoise)')")  # fmt: skip
    e.add_argument("--authors", default=None, metavar="'NAME, NAME'",
                   help="comma-separated author names (default: your user name)")  # fmt: skip
    e.add_argument("--description", default=None, help="one-line description (default: the algorithm)")
    e.add_argument("--license", default="CC-BY-4.0", help="SPDX licence of the weights (default CC-BY-4.0)")
    e.add_argument("--cite", action="append", default=None, metavar="'DOI|TEXT'",
                   help="a citation as DOI|text (repeatable; default: the paper of the algorithm)")  # fmt: skip
    e.add_argument("--image", default=None, metavar="IMAGE",
                   help="image to cut the package's test input from (default: the crop of the training image "
                   "the model keeps; needed for models saved by older versions)")  # fmt: skip
    e.add_argument("--axes", default=None, help="axes of --image (read from the file or guessed when omitted)")
    e.add_argument("--overwrite", action="store_true", help="replace NAME.zip if it exists")
    e.add_argument("--accept-suspect", action="store_true",
                   help="export a model whose own self-check failed, marked suspect in its README and description; "
                   "without it such a model writes nothing and exits with code 4")  # fmt: skip
    e.add_argument("--debug", action="store_true", help="show the full traceback of unexpected errors")


def _cite(items: list[str] | None) -> list[tuple[str, str]] | None:
    if items is None:
        return None
    pairs = []
    for item in items:
        doi, _, text = item.partition("|")
        pairs.append((text.strip() or doi.strip(), doi.strip()))
    return pairs


def cmd_export(args: argparse.Namespace) -> int:
    """``selfsup-denoise export``: a model whose own self-check failed exits with code 4 unless ``--accept-suspect``."""
    from ..engine.model import load_model
    from ..export import SuspectModelError, check_target, export_bmz
    from ..export._trust import is_suspect, refusal
    from ..io import check_output_path
    from ._commands import EXIT_SUSPECT

    target = check_target(args.output, args.overwrite)  # before loading anything
    inputs = [args.model, *([args.image] if args.image else [])]  # `export pkg.zip -o pkg.zip` would replace MODEL
    check_output_path(target, inputs, overwrite=True, what="package")
    model = load_model(args.model)
    image, axes, opened = None, None, None
    if args.image is not None:
        from ..io import read_image

        opened = read_image(args.image, args.axes)
        image, axes = opened.data, opened.axes_or_guess()
    authors = [a.strip() for a in args.authors.split(",") if a.strip()] if args.authors else None
    try:
        path = export_bmz(model, target, image=image, axes=axes, name=args.name, authors=authors,
                          description=args.description, license=args.license, cite=_cite(args.cite),
                          overwrite=args.overwrite, accept_suspect=args.accept_suspect)  # fmt: skip
    except SuspectModelError:
        print(f"selfsup-denoise: {refusal(model, 'pass --accept-suspect')}", file=sys.stderr)
        return EXIT_SUSPECT
    finally:
        if opened is not None:
            opened.close()
    print(f"wrote {path} ({Path(path).stat().st_size / 1e6:.1f} MB); check it with: bioimageio test {path}",
          file=sys.stderr)  # fmt: skip
    if is_suspect(model):
        print("the model failed its self-check: the package is marked suspect (README, description)", file=sys.stderr)
    return 0
