from edgedit.cli import main

main()
