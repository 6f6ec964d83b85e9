"""tests unit."""
