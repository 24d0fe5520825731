"""spark-submit entry: Spark SQL over the gold tables and analyst views (see shopperlake.query)."""

import sys

from shopperlake.query import main

if __name__ == "__main__":
    sys.exit(main())
