"""Authentication and authorization: API tokens, OIDC JWTs, the Chalice authorizer and token administration.

Modules are imported one by one (`chalicelib.auth.authorizer`, `.tokens`, `.routes`, ...) so a Lambda only pays
for what it uses; this package itself imports nothing.
"""
