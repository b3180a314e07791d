from sqlabench.cli import main

main()
