"""How models run fast on this machine: precision, channels_last, compile and threads (`settings`), and the
measured meaning of "auto" (`measured`: the cache of timed inference paths and training precisions)."""
