"""password reset."""
