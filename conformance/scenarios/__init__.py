"""Hypothesis scenarios: random interleavings of clients, faults and publishes, judged from the
recorded history (``conformance.checkers``). See ``machine.py``."""
