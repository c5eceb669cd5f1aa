from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from registry.services.tokens import api_token_check


class RegistryTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token <32 hex>` (tokens from `manage.py api_token`)."""

    keyword = "Token"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode().lower() not in ("token", "bearer"):
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Token <key>'.")
        token = api_token_check(header[1].decode(errors="replace"))
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired token.")
        # request.auth is the token: TokenRateThrottle counts per token.
        return (token.user, token)

    def authenticate_header(self, request):
        return self.keyword


class RegistryTokenScheme(OpenApiAuthenticationExtension):
    target_class = "registry.api.authentication.RegistryTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Token-based authentication: `Token <32 hex characters>`.",
        }
