/** To two decimals: what every figure of a load-test result is rounded to. */
export const round2 = (value: number): number => Math.round(value * 100) / 100;

/** Bytes as MB (MiB) to two decimals; null stays null. */
export const toMb = (bytes: number | null): number | null => (bytes === null ? null : round2(bytes / (1024 * 1024)));
