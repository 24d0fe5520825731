"""SASRec and the sequence arrays it reads: point-in-time event sequences, item steps,
leave-one-out rows, the model, next-item retrieval. No jobs (those are in
:mod:`shopperlake.sequences`); the recommender uses it as a blend source."""
