// Preloaded (`node --import`) into every quick start the docs test runs. A quick start that starts a server would
// run forever on a fixed port: here every listen goes to port 0 on 127.0.0.1 (parallel runs never collide), each
// server is asked `GET /` once it listens (proof that it serves), and the process exits 0 a moment after the last
// server answered. A quick start that starts no server must end by itself.
import http from 'node:http';
import net from 'node:net';

const listen = net.Server.prototype.listen;
let pending = 0;
let exitTimer;

net.Server.prototype.listen = function patchedListen(...args) {
  const callback = typeof args.at(-1) === 'function' ? args.at(-1) : undefined;
  this.once('listening', () => {
    const { port } = this.address();
    pending++;
    clearTimeout(exitTimer);
    http
      .get({ host: '127.0.0.1', port, path: '/' }, (res) => {
        res.resume();
        res.on('end', () => done(`[docs-harness] GET / on a quick start server -> ${res.statusCode}`));
      })
      .on('error', (error) => {
        console.error(`[docs-harness] the quick start server does not answer: ${error.message}`);
        process.exit(1);
      });
  });
  return listen.call(this, { port: 0, host: '127.0.0.1' }, callback);
};

function done(line) {
  console.log(line);
  pending--;
  if (pending === 0) exitTimer = setTimeout(() => process.exit(0), 300);
}
