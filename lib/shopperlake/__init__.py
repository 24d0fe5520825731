"""ShopperLake: Spark batch jobs for e-commerce user-behaviour analytics over Delta Lake."""

__version__ = "0.1.0"
