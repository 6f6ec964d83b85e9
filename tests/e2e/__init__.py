"""tests e2e."""
