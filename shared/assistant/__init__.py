"""What the AI answers."""
