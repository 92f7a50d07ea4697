"""authgate: an async authentication microservice."""

__version__ = "0.1.0"
