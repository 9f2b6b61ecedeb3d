"""`python -m deai_indexer` is `deai-indexer`."""

import sys

from .cli import main

sys.exit(main())
