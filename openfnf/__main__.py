from openfnf.cli import main

main()
