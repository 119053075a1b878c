"""Move a legacy application's users into Amazon Cognito user pools, per tenant.

Stages (one module each): extract -> mapping -> contract/validate -> report -> chunk -> load -> reconcile.
Stages do not import each other; ``pipeline.plan`` and ``pipeline.runner`` compose them.
"""

__version__ = "0.1.0"
