"""The canary rollout: its state in the registry, the evidence, the sequential test,
the policy that advances, promotes, rolls back or expires, the registry actions that
apply its decisions, the lock that makes state changes compare-and-set, one step of a
rollout, and the audit trail of decisions.

Modules, imported one by one (serving imports only `state`, so keep this file empty of
imports): `state`, `lock`, `sequential`, `evidence`, `policy` (pure `decide`),
`actions` (`apply_decision`, manual promote / rollback / restore), `stepper`, `audit`;
`simulation` (simulated rollouts) is for the tests only.
"""
