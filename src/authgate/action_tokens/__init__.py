"""Single-use opaque tokens sent to users: email links and one-time codes."""
