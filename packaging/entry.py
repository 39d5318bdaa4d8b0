"""Entry script of the frozen app (PyInstaller): the same commands as ``llm-workbench``.

One executable plays every part, chosen by its first argument, all of them dispatched by
:func:`desktop.cli.main`:

* ``--worker``: the llama.cpp worker process (:mod:`desktop.engine.worker`), which the app
  starts as ``<exe> --worker`` (see :func:`desktop.engine.runner.worker_command`);
* ``--probe-backends``: the backend probe (:mod:`desktop.engine.probe`), which
  :func:`desktop.core.hardware.probe_backends` starts as ``<exe> --probe-backends`` to ask
  llama.cpp which backends it has in a child process (so a crash there cannot take the app
  down), where a source install runs ``python -m desktop.engine.probe``;
* anything else: the headless commands (no arguments opens the window).
"""

from __future__ import annotations

import multiprocessing
import sys


def main() -> int:
    multiprocessing.freeze_support()  # a no-op unless a multiprocessing child starts
    from desktop.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
