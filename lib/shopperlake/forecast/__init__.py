"""Demand forecasting: daily units per item or category, many local statsforecast models
fitted in parallel on Spark and chosen per series on validation windows, conformal intervals
(``gold.demand_forecasts``) and rolling-origin backtests (``gold.forecast_backtests``)."""
