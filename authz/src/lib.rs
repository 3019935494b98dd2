//! Pipewright's access-control core, modelled on AWS IAM: ARNs, the policy
//! grammar, evaluation and trust checks. Pure: no I/O, no async, no database.
