"""``python -m napari_unet.cli``, as the ``napari-unet-loop`` command."""

import sys

from . import main

sys.exit(main())
