import { appendFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Where every run's figures are appended, one JSON object a line (ignored by git). */
export const FIGURES_FILE = fileURLToPath(new URL('./.figures.jsonl', import.meta.url));

/**
 * Reports a measured figure: printed for the reader of the test log and appended to {@link FIGURES_FILE}.
 * Figures are not assertions; a test asserts only the behaviour a user relies on.
 *
 * @example
 * reportFigure('memory load test p95', report.latency.p95, 'ms');
 */
export function reportFigure(name: string, value: number, unit: string): void {
  const figure = { name, value: Math.round(value * 1000) / 1000, unit, at: new Date().toISOString() };
  console.log(`[figure] ${name}: ${figure.value} ${unit}`);
  appendFileSync(FIGURES_FILE, `${JSON.stringify(figure)}\n`);
}
