declare module '@guard/core' {
  interface GuardErrorCodes {
    /** A component is in `full` mode but no sanitizer can heal it: full mode would answer 503 while nothing heals. */
    SANITIZER_MISSING: true;
    /** An optional peer dependency that the chosen option needs is not installed. */
    MISSING_PEER: true;
    /** `shutdown()` did not finish draining before its deadline; the rest was closed anyway. */
    SHUTDOWN_TIMEOUT: true;
  }
}

export {};
