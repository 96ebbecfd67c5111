"""Scores: the ISBI challenge's metrics (`metrics`) and a model predicted and scored on labelled slices (`evaluate`)."""
