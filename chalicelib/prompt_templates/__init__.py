"""Prompt templates: personas (system prompts) and directives (prompts with `{{placeholders}}`), each private,
shared with groups or global; wire models (`models`), the DynamoDB store (`store`), API routes (`routes`)."""
