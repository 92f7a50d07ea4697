"""Well-known documents, health, metrics and the local API docs."""
