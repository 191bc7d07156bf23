"""Chat sessions: the per-user DynamoDB store (`store`), its wire models (`models`) and API routes (`routes`)."""
