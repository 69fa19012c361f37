"""Meteor accounts against Django's users: `login`, `logout`, tokens, `createUser`...

Add `"dddp.accounts"` to INSTALLED_APPS (after `django.contrib.auth` and
`dddp`) and put `dddp.accounts.hashers.MeteorPBKDF2PasswordHasher` first in
PASSWORD_HASHERS. Meteor clients then log in with `Meteor.loginWithPassword`
(or any npm DDP client's login), resume with their token after a reconnect,
and see their own user document in the `users` collection. See
`dddp.accounts.ddp` for the methods and publications, and docs/accounts.rst.
"""
