"""Authentication: login sessions, JWT access and refresh tokens with rotation.

Other features reach authentication through `auth.dependencies` (`CurrentUser`,
`require_roles`): that module is this feature's public face, as a service is for others.
"""
