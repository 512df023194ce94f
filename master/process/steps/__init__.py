"""Build step types, one module per family."""
