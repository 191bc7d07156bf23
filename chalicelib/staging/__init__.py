"""Weight staging: a Step Functions workflow that puts a model's weights in the models bucket as safetensors.

`s3://<models bucket>/<org>/<name>/` holds a staged model (the HF id as prefix): its `.safetensors` shards (with
`model.safetensors.index.json` when sharded), its non-weight files (config, tokenizer, ...) as they were, and
`lisa-manifest.json` (files, sizes, sha256), written last: a prefix without a manifest is never a valid model.

Modules: `layout` (names, keys, file classification; no AWS), `tasks` (the Lambda task handlers the ASL in
`stepfunctions/staging.json` calls), `convert` (the per-shard conversion; imports torch lazily), `service`
(start/describe executions for the API and CLI), `routes` (the admin API and the Lambda functions).
"""

from __future__ import annotations

FUNCTIONS: dict[str, str] = {
    "FetchFromHubFunctionArn": "staging_fetch_from_hub",
    "ResolveFunctionArn": "staging_resolve",
    "ConvertShardFunctionArn": "staging_convert_shard",
    "PublishFunctionArn": "staging_publish",
    "MarkInServiceFunctionArn": "staging_mark_in_service",
    "RecordFailureFunctionArn": "staging_record_failure",
}
"""The ASL's DefinitionSubstitutions key → the Chalice Lambda function name (`lisa-<stage>-<name>` once deployed)."""
