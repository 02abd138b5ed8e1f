"""`python -m bench`: the side-by-side harness."""
from bench.run import main

import sys

sys.exit(main())
