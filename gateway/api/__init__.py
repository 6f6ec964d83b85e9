"""gateway api."""
