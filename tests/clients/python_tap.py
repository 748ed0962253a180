"""python_tap.py DIR -- runs the unittest tests in DIR (test_*.py) and
prints TAP: "ok N - name", "not ok N - name" with the traceback as "# "
lines, "ok N - name # SKIP why", then the plan. Exit status 0 iff all
passed."""

import sys
import unittest


class TapResult(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.n = 0

    def _line(self, ok, test, suffix=""):
        self.n += 1
        name = test.id().split(".", 1)[-1] if hasattr(test, "id") else str(test)
        print(f"{'ok' if ok else 'not ok'} {self.n} - python: {name}{suffix}",
              flush=True)

    @staticmethod
    def _diag(text):
        for line in text.rstrip().splitlines():
            print(f"# {line}", flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._line(True, test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._line(False, test)
        self._diag(self.failures[-1][1])

    def addError(self, test, err):
        super().addError(test, err)
        self._line(False, test)
        self._diag(self.errors[-1][1])

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line(True, test, f" # SKIP {reason}")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._line(True, test)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._line(False, test, " (unexpected success)")


def main():
    where = sys.argv[1] if len(sys.argv) > 1 else "."
    suite = unittest.defaultTestLoader.discover(where, top_level_dir=where)
    result = TapResult()
    suite.run(result)
    print(f"1..{result.n}", flush=True)
    return 0 if result.wasSuccessful() and result.n else 1


if __name__ == "__main__":
    sys.exit(main())
