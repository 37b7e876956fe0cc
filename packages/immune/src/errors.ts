declare module '@guard/core' {
  interface GuardErrorCodes {
    /** The store's write queue is full (too many events waiting for a commit); retry later. */
    QUEUE_FULL: true;
    /** The store failed to commit or read; `cause` holds the driver's error. */
    STORE_ERROR: true;
  }
}

export {};
