from keyshop.cli import main

main()
