"""SASRec and the sequence arrays it reads: point-in-time event sequences, item steps,
leave-one-out rows, the model, next-item retrieval, and the behaviour-prediction head over a
labelled row's latest events. No jobs (those are in :mod:`shopperlake.sequences`); the
recommender uses it as a blend source, ``train --model churn|propensity`` as a candidate."""
