"""The model registry: which models exist, where they are served and whether they are up.

`models` (wire/record shapes), `errors` (domain exceptions, light), `store` (DynamoDB), `resolver` (the
data plane's cached name lookup), `sync` (seed/update from config.yaml) and `routes` (the /models API).
"""
