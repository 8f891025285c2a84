"""python -m scaleenv: the same as the scaleenv command."""

import sys

from .cli import main

sys.exit(main())
