"""Scores: the ISBI 2012 metrics (`metrics`) and held-out evaluation beside the paper's Table 1 (`isbi`)."""
