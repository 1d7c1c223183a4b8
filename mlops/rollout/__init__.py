"""The canary rollout: its state in the registry, the evidence, the sequential test,
the policy that advances, promotes or rolls back, and the audit trail of decisions.

Modules, imported one by one (serving imports only `state`, so keep this file empty of
imports): `state`, `sequential`, `evidence`, `policy`, `audit`.
"""
