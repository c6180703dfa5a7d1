from secretops.cli import main

main()
