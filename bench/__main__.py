"""`python -m bench`: the side-by-side harness."""
import sys

from bench.run import main

sys.exit(main())
