"""Sign-in, second factor and sessions: the HTTP side of the security controls.

The rules themselves live in the services (users, tokens, mfa, logins); this
package holds what Django needs to hook them in: the django-axes handler and
lockout page, the middleware for session limits and "second factor first", the
second-factor pages and the password hook that revokes tokens.
"""
