from drplan.cli import main

main()
