"""The Meteor digest hasher with few rounds: the tests log in hundreds of times."""

from dddp.accounts.hashers import MeteorPBKDF2PasswordHasher


class FastMeteorPBKDF2PasswordHasher(MeteorPBKDF2PasswordHasher):
    iterations = 1000
