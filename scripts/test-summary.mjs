// Prints vitest's totals as one plain line ("tests: N passed, N failed") so CI logs end with a clear count.
import { readFileSync } from 'node:fs';

const file = process.argv[2] ?? '.vitest-results.json';
const results = JSON.parse(readFileSync(file, 'utf8'));
const skipped = results.numPendingTests + results.numTodoTests;
console.log(`tests: ${results.numPassedTests} passed, ${results.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(results.numFailedTests > 0 || results.numTotalTests === 0 ? 1 : 0);
