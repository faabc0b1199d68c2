"""Small builders shared by several test modules."""

from __future__ import annotations

import io
import os
import pickle


def pickled_callable() -> bytes:
    """A checkpoint-shaped pickle that would run ``touch PWNED`` if it were unpickled unsafely."""

    class Boom:
        def __reduce__(self):
            return (os.system, ("touch PWNED",))

    buf = io.BytesIO()
    pickle.dump({"state_dict": {}, "x": Boom()}, buf)
    return buf.getvalue()
