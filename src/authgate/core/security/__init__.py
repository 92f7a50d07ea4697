"""Security primitives: passwords, JWT and signing keys, opaque tokens, encryption at rest."""
