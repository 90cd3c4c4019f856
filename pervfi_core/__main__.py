"""``python -m pervfi_core``: see :mod:`pervfi_core.cli`."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
