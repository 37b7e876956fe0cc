import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

/** Options of one hand-built client frame; `ws` refuses to send most of the hostile ones. */
export interface RawFrame {
  readonly opcode: number;
  readonly payload?: Buffer;
  readonly fin?: boolean;
  /** RSV1-3 bits, 0..7. */
  readonly rsv?: number;
  /** Clients must mask; false sends the payload in clear (a protocol error). */
  readonly masked?: boolean;
  /** Declares this length in the header instead of the payload's (e.g. 2^63 for a forged 64-bit length). */
  readonly declaredLength?: bigint;
}

/** Encodes a client-to-server WebSocket frame (RFC 6455 section 5.2). */
export function encodeFrame(frame: RawFrame): Buffer {
  const payload = frame.payload ?? Buffer.alloc(0);
  const masked = frame.masked ?? true;
  const length = frame.declaredLength ?? BigInt(payload.length);
  const head = [((frame.fin ?? true) ? 0x80 : 0) | ((frame.rsv ?? 0) << 4) | frame.opcode];
  const maskBit = masked ? 0x80 : 0;
  let ext = Buffer.alloc(0);
  if (length < 126n) head.push(maskBit | Number(length));
  else if (length < 65_536n) {
    head.push(maskBit | 126);
    ext = Buffer.alloc(2);
    ext.writeUInt16BE(Number(length));
  } else {
    head.push(maskBit | 127);
    ext = Buffer.alloc(8);
    ext.writeBigUInt64BE(length);
  }
  if (!masked) return Buffer.concat([Buffer.from(head), ext, payload]);
  const mask = randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i]! ^= mask[i % 4]!;
  return Buffer.concat([Buffer.from(head), ext, mask, body]);
}

/** A WebSocket spoken by hand over node:net, for frames a well-behaved client library will not produce. */
export interface RawWebSocket {
  readonly socket: Socket;
  send(bytes: Buffer): void;
  /** The close code the server sent (1005 for an empty close frame, 1006 when the TCP connection ended without one). */
  readonly closeCode: Promise<number>;
}

/** Opens `/ws` on 127.0.0.1:`port` with a hand-written handshake and parses the server's frames. */
export async function openRawWebSocket(port: number, path = '/ws'): Promise<RawWebSocket> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  let buffer = Buffer.alloc(0);
  let upgraded = false;
  let resolveUpgrade!: () => void;
  let rejectUpgrade!: (error: Error) => void;
  const upgrade = new Promise<void>((resolve, reject) => {
    resolveUpgrade = resolve;
    rejectUpgrade = reject;
  });
  let resolveClose!: (code: number) => void;
  const closeCode = new Promise<number>((resolve) => (resolveClose = resolve));
  socket.on('close', () => {
    rejectUpgrade(new Error('closed before the upgrade'));
    resolveClose(1006);
  });
  socket.on('data', (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    if (!upgraded) {
      const end = buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buffer.subarray(0, end).toString('latin1');
      if (!head.startsWith('HTTP/1.1 101')) return rejectUpgrade(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
      upgraded = true;
      buffer = buffer.subarray(end + 4);
      resolveUpgrade();
    }
    // Server frames are unmasked; read whole frames and stop at the close frame.
    while (buffer.length >= 2) {
      const opcode = buffer[0]! & 0x0f;
      let length = buffer[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buffer.length < 4) return;
        length = buffer.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buffer.length < 10) return;
        length = Number(buffer.readBigUInt64BE(2));
        offset = 10;
      }
      if (buffer.length < offset + length) return;
      const payload = buffer.subarray(offset, offset + length);
      buffer = buffer.subarray(offset + length);
      if (opcode === 0x8) {
        resolveClose(payload.length >= 2 ? payload.readUInt16BE(0) : 1005);
        socket.end();
        return;
      }
    }
  });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  await upgrade;
  return { socket, send: (bytes) => void socket.write(bytes), closeCode };
}
