"""`python -m workers.tgi`: see `workers.tgi`."""

from workers.tgi.server import main

main()
