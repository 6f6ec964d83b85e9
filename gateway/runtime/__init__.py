"""gateway runtime."""
