"""A SHA-256 whose state can be saved between requests, so a file is hashed as its chunks arrive.

``hashlib`` objects cannot be pickled, and the chunks of one upload may reach different
processes or hosts. OpenSSL's low-level ``SHA256_CTX`` is a plain, documented C struct
(``openssl/sha.h``: eight 32-bit words of state, the bit count, a 64-byte block buffer and
its fill), unchanged since OpenSSL 0.9.8, so its bytes are the whole state: we save them in
the database after each chunk and load them before the next. ``SHA256_Init/Update/Final``
are deprecated in OpenSSL 3 but still exported by libcrypto 3.x, and run at full OpenSSL
speed (SHA-NI where the CPU has it). See docs/uploads.md for why not a PyPI package.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

# typedef struct SHA256state_st { SHA_LONG h[8]; SHA_LONG Nl, Nh; SHA_LONG data[16]; unsigned int num, md_len; }
STATE_SIZE = 8 * 4 + 4 + 4 + 16 * 4 + 4 + 4


@cache
def _libcrypto() -> ctypes.CDLL:
    name = ctypes.util.find_library("crypto")
    if name is None:
        raise RuntimeError("libcrypto (OpenSSL) is needed for resumable hashing and was not found.")
    lib = ctypes.CDLL(name)
    for func in (lib.SHA256_Init, lib.SHA256_Update, lib.SHA256_Final):
        func.restype = ctypes.c_int
    lib.SHA256_Init.argtypes = [ctypes.c_void_p]
    lib.SHA256_Update.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.SHA256_Final.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    return lib


class ResumableSha256:
    """``update()`` and ``hexdigest()`` like hashlib, plus ``state()`` / ``from_state()``."""

    def __init__(self) -> None:
        self._ctx = ctypes.create_string_buffer(STATE_SIZE)
        if _libcrypto().SHA256_Init(self._ctx) != 1:
            raise RuntimeError("SHA256_Init failed")

    @classmethod
    def from_state(cls, state: bytes) -> ResumableSha256:
        if len(state) != STATE_SIZE:
            raise ValueError(f"A SHA-256 state is {STATE_SIZE} bytes, not {len(state)}.")
        obj = cls.__new__(cls)
        obj._ctx = ctypes.create_string_buffer(bytes(state), STATE_SIZE)
        return obj

    def state(self) -> bytes:
        return self._ctx.raw

    def copy(self) -> ResumableSha256:
        return ResumableSha256.from_state(self.state())

    def update(self, data: bytes | bytearray | memoryview) -> None:
        block = data if isinstance(data, bytes) else bytes(data)  # no copy of the usual bytes
        if _libcrypto().SHA256_Update(self._ctx, block, len(block)) != 1:
            raise RuntimeError("SHA256_Update failed")

    def hexdigest(self) -> str:
        """The digest of what was fed so far; the state itself is left as it was."""
        ctx = ctypes.create_string_buffer(self._ctx.raw, STATE_SIZE)
        out = ctypes.create_string_buffer(32)
        if _libcrypto().SHA256_Final(out, ctx) != 1:
            raise RuntimeError("SHA256_Final failed")
        return out.raw.hex()
