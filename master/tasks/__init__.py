"""Tasks on the fleet (Swarming's model): the request model and its validation, task ids,
slave dimensions and matching.  The engine that schedules tasks builds on these."""
