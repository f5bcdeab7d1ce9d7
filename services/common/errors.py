"""Error types that more than one layer raises or catches, kept here so no layer imports upward for them.

A `UserError`'s message is written for the person at the terminal: the command-line front-ends print
it as one `error: …` line and exit non-zero, without a traceback. Every other exception is a bug and
keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Base of every error whose message tells a user what to do; the CLI prints it as one line."""


class TritonError(UserError):
    """tritonserver is missing, cannot start, or did not become ready.

    The runtime raises it; the serving stack, the load-test flows and the commands catch it, so it
    lives below all of them.
    """
