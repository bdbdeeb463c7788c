"""``python -m napari_unet.cli``."""

import sys

from . import main

sys.exit(main())
