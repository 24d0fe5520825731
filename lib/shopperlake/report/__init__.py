"""The analysts' HTML report: one self-contained file (and its PNGs) per as-of date."""
