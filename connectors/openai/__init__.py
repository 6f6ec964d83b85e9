"""connectors openai."""
