"""`lisa`: the command line for account owners and admins (tokens, models, staging, RAG)."""
