"""LISA control-plane logic deployed to Lambda: one package per concern."""
