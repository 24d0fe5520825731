"""spark-submit entry: ingest raw files into the bronze tables (see shopperlake.ingest.job)."""

import sys

from shopperlake.ingest.job import main

if __name__ == "__main__":
    sys.exit(main())
