"""`VtbenchError`: the base of errors that describe a problem with the user's input or machine (a missing
file, a bad option, unavailable weights), which the CLI prints as one line instead of a traceback."""


class VtbenchError(Exception):
    """A problem the user can fix; its message says what was expected and how to fix it."""


class UnknownName(VtbenchError, KeyError):
    """A tokenizer, task, metric or weights name that is not registered; the message suggests close ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
