"""tests fakes."""
