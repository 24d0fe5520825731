"""Churn and purchase propensity: labels and population, point-in-time training sets
over purged cutoffs, the Horovod DNN with MLlib baselines, calibrated scores with bands and
reasons, and retention targets."""
