"""The `openfnf` command: composition root that starts the front door, workers and timers."""
