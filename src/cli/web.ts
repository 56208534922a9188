// `longctx web`: serves the browser page (dist/web: the bundled library, the page, the embedded stories260K
// and the eval report) from the installed package over node:http, loopback by default. Static files only:
// the page fetches nothing from anywhere else, and the server reads nothing outside its folder.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../errors.js';
import { numberOption, parse } from './args.js';

export const WEB_USAGE = `usage: longctx web [--host 127.0.0.1] [--port 8090]
  serves the page that runs longctx in the browser (WebGPU through navigator.gpu, else the CPU):
  stories260K embedded or a GGUF picked from disk, attention per layer, patterns, cost and accuracy.
  --port 0 picks a free port (the URL is printed). Build it first with npm run build.`;

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.gguf': 'application/octet-stream',
};

/** dist/web beside this file's dist/src/cli. */
export function webRoot(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'web');
}

/** A static server of `root`; resolves once listening, with the URL. */
export async function serveWebPage(root: string, port: number, host: string): Promise<{ server: Server; url: string }> {
  if (!existsSync(join(root, 'index.html')) || !existsSync(join(root, 'app.js')))
    throw new InputError(`${root} holds no built page (index.html, app.js): run npm run build first`);
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = normalize(join(root, path === '/' ? 'index.html' : path));
    const inside = file.startsWith(root.endsWith(sep) ? root : root + sep);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (!inside || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'cache-control': 'no-cache',
      // Nothing but this origin: no CDN, no fetch elsewhere (the page needs none).
      'content-security-policy': "default-src 'self'; style-src 'self'; img-src 'self' data:",
    });
    res.end(req.method === 'HEAD' ? undefined : readFileSync(file));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new InputError(`cannot listen on ${host}:${port}: ${e.message}`)));
    server.listen(port, host, resolve);
  });
  const address = server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  return { server, url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}/` };
}

export async function webCommand(argv: string[]): Promise<void> {
  const v = parse(argv, { host: { type: 'string' }, port: { type: 'string' } });
  const port = numberOption(v, 'port') ?? 8090;
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new InputError(`--port must be an integer from 0 to 65535, got ${port}`);
  const host = typeof v.host === 'string' ? v.host : '127.0.0.1';
  const { server, url } = await serveWebPage(webRoot(), port, host);
  process.stderr.write(`web: serving the page at ${url} (Ctrl-C stops)\n`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      server.close(() => resolve());
      server.closeAllConnections();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
