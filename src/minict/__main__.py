from minict.cli.main import main

raise SystemExit(main())
