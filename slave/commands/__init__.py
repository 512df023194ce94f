"""The remote commands a slave runs: one module per command family, `base` for what they share."""
