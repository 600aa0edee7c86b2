"""``python -m pyomo_relu`` runs the command line interface."""

import sys

from pyomo_relu.cli import main

if __name__ == "__main__":
    sys.exit(main())
