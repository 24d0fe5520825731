"""Churn and purchase-propensity models: labels, training sets, features, Horovod training,
evaluation, registry and scoring."""
