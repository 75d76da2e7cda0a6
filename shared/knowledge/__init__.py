"""Each tenant's documents: what the AI answers from."""
