/** A reason the node cannot start that the operator fixes (a setting, a secret, etcd): printed without a stack trace. */
export class StartError extends Error {}
