"""``python -m dynamo_nb``: the same command line as the ``dynamo-nb`` console script."""

import sys

from .cli import main

__all__: list[str] = []

sys.exit(main())
