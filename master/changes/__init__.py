"""Changes: commits reported to the master, and the filters schedulers choose them with."""
