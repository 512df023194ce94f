"""``SecretRedactor``: the values of the secrets a build rendered, shown as ``<name>``.

As Buildbot's ``Properties.useSecret`` / ``cleanupTextFromSecrets``: each secret value a
build renders (``util.Secret``, ``%(secret:name)s``) is remembered with its name, and every
text the build stores (its logs, state strings, properties) has each occurrence of a value
replaced by ``<name>``.  A value of only whitespace is not remembered (it would blank the logs).

Log text arrives in pieces, and a secret may be cut between two of them: ``RedactingStream``
holds back the end of a piece that could be the beginning of a secret until the next piece
(or the end of the log) shows whether it is.
"""

from typing import Any


class SecretRedactor:
    """The secrets one build rendered, and the redaction of its text."""

    def __init__(self):
        self._shown: dict[str, str] = {}  # value -> "<name>"
        self._longest_first: list[str] = []

    def __bool__(self) -> bool:
        return bool(self._shown)

    def add(self, value: str, name: str) -> None:
        """Remember that the build rendered secret ``name`` with ``value``."""
        if not value.strip() or value in self._shown:
            return
        self._shown[value] = f"<{name}>"
        # A longer value first, so a secret that contains another is replaced whole.
        self._longest_first = sorted(self._shown, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` with every secret value in it replaced by ``<name>``."""
        for value in self._longest_first:
            if value in text:
                text = text.replace(value, self._shown[value])
        return text

    def redact_structure(self, value: Any) -> Any:
        """``value`` (strings inside lists, tuples and dicts, keys too) redacted."""
        if not self._shown:
            return value
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list | tuple):
            return type(value)(self.redact_structure(item) for item in value)
        if isinstance(value, dict):
            return {self.redact_structure(k): self.redact_structure(v) for k, v in value.items()}
        return value

    def unsure_tail(self, text: str) -> int:
        """How many characters at the end of ``text`` could begin a secret value (the
        longest end of ``text`` that is a proper beginning of one); 0 if none."""
        if not text:
            return 0
        longest, last = 0, text[-1]
        for value in self._shown:
            # Ends of text that are beginnings of value end with text's last character:
            # try each place that character occurs in value, longest first.
            at = min(len(value) - 1, len(text))
            while at > longest:
                at = value.rfind(last, 0, at)
                if at < 0:
                    break
                length = at + 1
                if length > longest and text.endswith(value[:length]):
                    longest = length
                    break
        return longest


class RedactingStream:
    """One log's text through a ``SecretRedactor``, piece by piece (see the module docstring)."""

    def __init__(self, redactor: SecretRedactor):
        self.redactor = redactor
        self._held = ""

    def feed(self, text: str) -> str:
        """The redacted text that can be shown now (an unsure end is held back)."""
        if not self.redactor:
            text, self._held = self._held + text, ""
            return text
        text = self.redactor.redact(self._held + text)
        keep = self.redactor.unsure_tail(text)
        if keep:
            text, self._held = text[:-keep], text[-keep:]
        else:
            self._held = ""
        return text

    def release(self) -> str:
        """The end of the log: what was held back, redacted."""
        text, self._held = self._held, ""
        return self.redactor.redact(text)
