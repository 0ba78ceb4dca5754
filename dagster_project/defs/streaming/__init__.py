"""Streaming: the PyFlink jobs of `flink_jobs.JOBS` on the Flink cluster, deployed by materialising their
assets, watched and brought back by a sensor, checked to be running."""
