"""Chat attachments (documents in context, no RAG repository): a presigned S3 PUT per file, then its text
extracted by the RAG parsers; wire models (`models`), records and objects (`store`), API routes (`routes`)."""
