"""Passkeys: WebAuthn credentials that sign a user in without a password."""
