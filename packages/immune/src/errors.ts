declare module '@guard/core' {
  interface GuardErrorCodes {
    /** The store's write queue is full (too many events waiting for a commit); retry later. */
    QUEUE_FULL: true;
    /** The store failed to commit or read; `cause` holds the driver's error. */
    STORE_ERROR: true;
    /**
     * The store cannot be reached right now (connection refused, reset or terminated, connect/statement/query
     * timeout, SQLite busy); transient: retry later. `cause` holds the driver's error.
     */
    STORE_UNAVAILABLE: true;
    /** An optional peer dependency (`pg`, `better-sqlite3`) the chosen entry point needs is not installed; `details.peer` names it. */
    MISSING_PEER: true;
  }
}

export {};
