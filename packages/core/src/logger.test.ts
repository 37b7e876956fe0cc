import { describe, expect, it } from 'vitest';
import { createJsonLogger, silentLogger } from './logger.js';

describe('createJsonLogger', () => {
  it('writes one JSON line per record with pino-shaped fields', () => {
    const lines: string[] = [];
    const logger = createJsonLogger({ level: 'info', write: (line) => lines.push(line), bindings: { service: 'api' } });
    logger.info({ component: 'websocket' }, 'Parasite detected');
    expect(lines).toHaveLength(1);
    expect(lines[0]!.endsWith('\n')).toBe(true);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 30, service: 'api', component: 'websocket', msg: 'Parasite detected' });
  });

  it('drops records below the level, serializes errors, and binds children', () => {
    const lines: string[] = [];
    const logger = createJsonLogger({ level: 'warn', write: (line) => lines.push(line) });
    logger.info({}, 'hidden');
    logger.child!({ requestId: 'r1' }).error({ err: Object.assign(new Error('bad'), { code: 'E1' }) }, 'failed');
    expect(lines).toHaveLength(1);
    const record = JSON.parse(lines[0]!);
    expect(record).toMatchObject({ level: 50, requestId: 'r1', err: { type: 'Error', message: 'bad', code: 'E1' } });
  });

  it('the silent logger accepts calls and writes nothing', () => {
    expect(() => silentLogger.error({ x: 1 }, 'nothing')).not.toThrow();
    expect(silentLogger.child!({})).toBe(silentLogger);
  });
});
