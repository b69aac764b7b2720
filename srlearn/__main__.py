"""``python -m srlearn ...``: the ``srlearn`` command from a checkout, without installing
(``PYTHONPATH=. python3 -m srlearn campaign ...`` on a machine that has only torch and its friends)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
