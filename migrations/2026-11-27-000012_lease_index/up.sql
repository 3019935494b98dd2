-- A lookup of one action by its id with `status = 'InProgress'` (a claim, a
-- heartbeat, a result) also satisfied the old index's predicate, and with
-- statistics taken while few actions ran, the planner scanned that whole
-- index instead of the primary key: some 1,600 entries a statement under
-- load. This predicate (a lease is held) is implied by the sweeper's
-- `lease_until < now()` only.
DROP INDEX action_executions_leased;
CREATE INDEX action_executions_leased ON action_executions (lease_until) WHERE lease_until IS NOT NULL;
