"""python -m scaleenv: the same as the scaleenv command."""

import sys

from ._cli import main

sys.exit(main())
