"""``python -m taskplane`` is the ``taskplane`` command."""

from taskplane.cli import main

raise SystemExit(main())
