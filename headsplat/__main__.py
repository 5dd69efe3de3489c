from headsplat.cli.main import main

raise SystemExit(main())
