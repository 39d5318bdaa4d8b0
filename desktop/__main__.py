"""`python -m desktop`: the same entry point as the `llm-workbench` command."""

from desktop.cli import main

raise SystemExit(main())
