"""Utilities every layer uses: atomic file writes and sha256 (`files`), "did you mean" hints (`suggest`), picking a
device (`device`), timers and FLOP counts (`timing`), figures (`plots`).
"""
