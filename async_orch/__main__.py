"""`python -m async_orch` runs the command line."""

from async_orch._cli import main

raise SystemExit(main())
