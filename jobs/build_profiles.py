"""spark-submit entry: the gold.user_profiles snapshot --as-of (see shopperlake.build_profiles)."""

import sys

from shopperlake.build_profiles import main

if __name__ == "__main__":
    sys.exit(main())
