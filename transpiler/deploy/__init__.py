"""Deploying a Lambda artifact with boto3, as a plan/apply pair.

- settings.py: the options of `sray-gen deploy` / `destroy`, from [tool.sray.deploy] and flags
- artifact.py: checks a zip (an executable `bootstrap`, or a Python worker) and hashes it
- aws.py: boto3 session and clients (retries, errors that say what to do)
- iam.py: the least-privilege execution role's policy documents
- plan.py: reads the current state and computes the steps of a deploy (mutates nothing)
- apply.py: carries out a deploy plan, with waiters and retries
- teardown.py: the plan and apply of `sray-gen destroy`
- worker.py: packages the generic Python worker Lambda (`sray-gen deploy --worker`)
"""

from .errors import DeployError

__all__ = ["DeployError"]
