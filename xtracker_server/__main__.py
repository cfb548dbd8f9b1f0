from xtracker_server.cli import main

main()
