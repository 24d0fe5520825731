"""The base every capability stands on: configuration, Spark session, the Delta lake and
model storage, table schemas, the run log, the job registry's declaration type, job plumbing,
errors. Nothing here imports a capability package."""
