"""What every HTTP surface of the master shares."""
