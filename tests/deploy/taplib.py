"""taplib.py -- TAP output for the tests of deploy/ (tests/run counts the
"ok" and "not ok" lines)."""

import sys


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, desc, diag=None):
        """One test line; diag (a string or a list) is printed as '# '
        lines when cond is false. Returns cond."""
        self.n += 1
        if not cond:
            self.failed += 1
        print(("ok" if cond else "not ok") + f" {self.n} - {desc}")
        if not cond and diag:
            for line in [diag] if isinstance(diag, str) else diag:
                print(f"# {line}")
        sys.stdout.flush()
        return bool(cond)

    def skip(self, desc, why):
        self.n += 1
        print(f"ok {self.n} - {desc} # SKIP {why}")

    def diag(self, text):
        print(f"# {text}")

    def done(self):
        print(f"1..{self.n}")
        return 1 if self.failed else 0
