"""When a provider identity vouches for the owner of an account (see ``accounts`` for the rules)."""

from __future__ import annotations

from authgate.models import OAuthIdentity


def same_address(a: str, b: str) -> bool:
    return a.casefold() == b.casefold()


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
