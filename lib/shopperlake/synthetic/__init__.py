"""The synthetic shop: a seeded generator of users, items and events (views, carts,
orders, returns, reviews) with planted behaviour for tests, demo and benchmarks."""
