"""The platform's configuration and logging, at the bottom of the house: every other package imports them, they import
none of ours. `settings.py`: one typed configuration (pipeline.yaml, `PIPELINE_*` overrides); `logs.py`: one line
per event that matters, secrets redacted.
"""
