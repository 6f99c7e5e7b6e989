"""The one exception type that carries a message meant for the user.

Anything the user can get wrong (a file, a bound, a layer) raises :class:`InputError` with a
single plain sentence. The CLI prints it on one line and exits with status 2; the plugin shows it
as a notification. Programming errors stay ordinary exceptions and keep their tracebacks in logs.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input from the user: the message is one line, written for a person, not a programmer."""
