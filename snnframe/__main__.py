from snnframe.cli import main

main()
