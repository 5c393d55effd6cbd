"""``python -m napari_selfsup_denoise.cli`` runs the command line."""

import sys

from . import main

sys.exit(main())
