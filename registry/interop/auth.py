"""Token look-up shared by the REDCap and FHIR channels (same tokens as /api/v1/)."""

from registry.services.tokens import api_token_user


def header_token_user(request):
    """The user of `Authorization: Token|Bearer <key>`, or None."""
    parts = request.headers.get("Authorization", "").split()
    if len(parts) != 2 or parts[0].lower() not in ("token", "bearer"):
        return None
    return api_token_user(parts[1])
