"""The shared training core: the one Horovod runner every deep model uses (Petastorm
I/O, GPU pinning by local rank, scaled learning rate, broadcast, rank-0 result), the model
registry, probability calibration, classifier and ranking metrics, the seeded bootstrap and the
``gold.model_metrics`` rows every comparison writes."""
