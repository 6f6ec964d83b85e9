"""gateway store."""
