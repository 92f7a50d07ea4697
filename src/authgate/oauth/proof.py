"""When a provider identity vouches for the owner of an account (see ``accounts`` for the rules)."""

from __future__ import annotations

from authgate.models import OAuthIdentity
from authgate.users.emails import email_key


def same_address(a: str, b: str) -> bool:
    """The same mailbox by the uniqueness rule of addresses (ASCII letters fold, nothing else)."""
    return email_key(a) == email_key(b)


def proves_owner(identity: OAuthIdentity, email: str) -> bool:
    """Whether the identity may sign in to (or stay on) an account whose address is ``email``:
    connected by the signed-in owner, or it proved that very address at its provider."""
    if identity.linked_by_owner:
        return True
    return (
        identity.email_verified
        and identity.email is not None
        and same_address(identity.email, email)
    )
