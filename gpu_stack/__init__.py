"""LISA's AWS deployment: a CDK v2 app (aws-cdk-lib) synthesized from config.yaml; `python -m gpu_stack.app`."""
