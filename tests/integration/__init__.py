"""tests integration."""
