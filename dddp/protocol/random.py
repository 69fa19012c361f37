"""Meteor's Random: ids the client's method stub and the server both draw from `randomSeed`.

When a Meteor client calls a method whose stub inserts a document (`Books.insert`
is one), it sends a `randomSeed`, and the stub and the server each draw the new
document's id from the same seeded stream: the id the client shows at once is
the one the server's row gets, so nothing flickers when the server's data comes
(docs/ddp-protocol.md, section 5, R-1 to R-7).

- `Alea` is Baagøe's generator (Alea 0.9 with Mash 0.9), as Meteor's
  AleaRandomGenerator.js has it; every step is an IEEE double operation in the
  same order as JavaScript's, so Python's floats give the same numbers.
- `RandomStreams` is Meteor's RandomStream for one method invocation: one
  generator per stream name (`/collection/<name>` for inserts into a
  collection), each seeded with `[randomSeed, name]`, each with its own
  sequence.
- Without a seed (a client that sent none, code outside a method) ids come
  from the operating system's random source (`secrets`), as Meteor's server
  does.

Sans-IO: neither Django nor gevent.
"""

from __future__ import annotations

import math
import secrets

#: Meteor's `Random.id()` alphabet: no 0, 1, I, O, l, U, V: characters hard to confuse.
UNMISTAKABLE_CHARS = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
HEX_CHARS = "0123456789abcdef"
BASE64_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"

#: `Random.id()`'s length: 17 characters of 55, about 98 bits.
ID_LENGTH = 17

_TWO_32 = 4294967296.0  # 2 ** 32
_TWO_MINUS_32 = 2.3283064365386963e-10  # 2 ** -32


class RandomGenerator:
    """Meteor's RandomGenerator: strings drawn from `fraction()`, a float in [0, 1)."""

    def fraction(self) -> float:
        raise NotImplementedError

    def choice(self, alphabet: str) -> str:
        return alphabet[math.floor(self.fraction() * len(alphabet))]

    def random_string(self, length: int, alphabet: str) -> str:
        return "".join(self.choice(alphabet) for _ in range(length))

    def id(self, length: int = ID_LENGTH) -> str:
        """What Meteor's `Random.id()` gives: the id of a new document."""
        return self.random_string(length, UNMISTAKABLE_CHARS)

    def hex_string(self, digits: int) -> str:
        return self.random_string(digits, HEX_CHARS)

    def secret(self, length: int = 43) -> str:
        return self.random_string(length, BASE64_CHARS)


class Alea(RandomGenerator):
    """Alea 0.9, seeded with strings: the same seeds give the same sequence as Meteor's."""

    def __init__(self, *seeds: str):
        mash = _Mash()
        self._s0, self._s1, self._s2 = mash(" "), mash(" "), mash(" ")
        self._c = 1.0
        for seed in seeds:
            self._s0 -= mash(seed)
            if self._s0 < 0:
                self._s0 += 1
            self._s1 -= mash(seed)
            if self._s1 < 0:
                self._s1 += 1
            self._s2 -= mash(seed)
            if self._s2 < 0:
                self._s2 += 1

    def fraction(self) -> float:
        t = 2091639 * self._s0 + self._c * _TWO_MINUS_32
        self._s0 = self._s1
        self._s1 = self._s2
        self._c = float(math.trunc(t))  # JavaScript's `t | 0`: t is positive and below 2 ** 31
        self._s2 = t - self._c
        return self._s2


class _Mash:
    """Mash 0.9: hashes strings into the seeds; its state carries from one call to the next."""

    def __init__(self) -> None:
        self._n = 4022871197.0  # 0xefc8249d

    def __call__(self, data: str) -> float:
        n = self._n
        encoded = data.encode("utf-16-le", "surrogatepass")  # JavaScript's charCodeAt: UTF-16 units
        for index in range(0, len(encoded), 2):
            n += encoded[index] | encoded[index + 1] << 8
            h = 0.02519603282416938 * n
            n = float(int(h) % 4294967296)  # `h >>> 0`: h is not negative
            h -= n
            h *= n
            n = float(int(h) % 4294967296)
            h -= n
            n += h * _TWO_32
        self._n = n
        return (int(n) % 4294967296) * _TWO_MINUS_32


class SecureGenerator(RandomGenerator):
    """Draws from the operating system's random source: for ids nobody needs to reproduce."""

    def fraction(self) -> float:
        return secrets.randbits(53) / 9007199254740992.0  # 2 ** 53: every double in [0, 1) is as likely

    def choice(self, alphabet: str) -> str:
        return secrets.choice(alphabet)


#: The generator for ids drawn outside a seeded method invocation.
secure = SecureGenerator()


class RandomStreams:
    """Meteor's RandomStream of one method invocation: a generator per stream name.

    With a seed, stream `name` is `Alea(seed, name)`, made on first use and kept,
    so the n-th id drawn from it in this invocation is the n-th the client's stub
    drew. Without a seed every stream is `secure`.
    """

    def __init__(self, seed: str | None):
        self.seed = seed
        self._streams: dict[str, RandomGenerator] = {}

    def stream(self, name: str) -> RandomGenerator:
        if self.seed is None:
            return secure
        found = self._streams.get(name)
        if found is None:
            found = self._streams[name] = Alea(self.seed, name)
        return found

    def collection_id(self, collection: str) -> str:
        """The id of the next document inserted into `collection` (R-2: stream `/collection/<name>`)."""
        return self.stream("/collection/" + collection).id()

    def child_seed(self, method: str) -> str:
        """The `randomSeed` of a method called from this one (R-1: stream `/rpc/<name>`)."""
        return self.stream("/rpc/" + method).hex_string(20)
