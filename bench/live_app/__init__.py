"""The live-data benchmark's Django app: the tables that `bench/live.py` writes and publishes."""
