"""authgate: an async authentication microservice."""
