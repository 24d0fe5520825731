"""Return prediction: will the customer return this order line within H days?

One row per purchase line; features strictly from before the purchase day plus the line and
its own order (``features``); point-in-time labels and an out-of-time split
(``training_set``); the DNN on the shared Horovod/Petastorm core against MLlib GBT and
logistic regression, calibrated, evaluated with customer-level bootstrap intervals
(``train``); ``gold.return_risk`` for the open order lines of an as-of date (``score``).
"""
