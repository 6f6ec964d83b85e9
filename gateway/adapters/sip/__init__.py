"""gateway adapters sip."""
