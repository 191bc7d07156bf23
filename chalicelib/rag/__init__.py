"""RAG: repositories (`repositories`), documents (`documents`), parsing, chunking, embedding, vector stores
(`vectorstores`: PGVector, OpenSearch), S3 → SQS ingestion (`ingestion`), the caller-checked service (`service`)
and the /repositories API with the ingestion queue handler (`routes`)."""
