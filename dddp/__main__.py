"""`python -m dddp`: the same server as the `dddp` console script."""

import sys

from dddp.server.main import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m dddp"))
