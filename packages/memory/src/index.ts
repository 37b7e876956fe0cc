/** The package name, for diagnostics. Filled in by this package's own issue. */
export const packageName = '@guard/memory';
