"""Entry script of the frozen app (PyInstaller): the same commands as ``llm-workbench``.

One executable plays three parts, chosen by its first argument:

* ``--worker``: the llama.cpp worker process (:mod:`desktop.engine.worker`), which the app
  starts as ``<exe> --worker`` (see :func:`desktop.engine.runner.worker_command`);
* ``-c CODE``: a stand-in for ``python -c``, because a frozen app has no Python interpreter
  to run and :func:`desktop.core.hardware.probe_backends` asks llama.cpp which backends it
  has by running ``[sys.executable, "-c", script]`` in a child process (so a crash there
  cannot take the app down). Only the frozen build honours it;
* anything else: :func:`desktop.cli.main` (no arguments opens the window).
"""

from __future__ import annotations

import multiprocessing
import sys


def _run_code(code: str, argv: list[str]) -> int:
    """Run ``code`` like ``python -c code argv...``: as ``__main__``, sys.argv[0] == "-c"."""
    sys.argv = ["-c", *argv]
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(compile(code, "<string>", "exec"), namespace)
    except SystemExit as stop:
        code_ = stop.code
        if code_ is None:
            return 0
        if isinstance(code_, int):
            return code_
        print(code_, file=sys.stderr)
        return 1
    return 0


def main() -> int:
    multiprocessing.freeze_support()  # a no-op unless a multiprocessing child starts
    args = sys.argv[1:]
    if getattr(sys, "frozen", False) and args[:1] == ["-c"] and len(args) >= 2:
        return _run_code(args[1], args[2:])
    from desktop.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
