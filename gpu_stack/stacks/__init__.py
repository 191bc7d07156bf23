"""One stack per concern; each deploys on its own (`make deploy STACK=<name>`)."""
