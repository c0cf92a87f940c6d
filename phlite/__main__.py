from phlite.cli import main

main()
