"""The built-in steps; importing this package registers them.

Each step is one module: its class (arguments, batches, run and collect) and
its command line (``python -m tmlib.workflow.steps.<name>`` or the console
script ``<name>``).
"""

from tmlib.workflow.steps import (
    align,
    corilla,
    illuminati,
    imextract,
    jterator,
    metaconfig,
    metaextract,
)

__all__ = ["align", "corilla", "illuminati", "imextract", "jterator", "metaconfig", "metaextract"]
