// HTTP answers the stand-ins share.
import type { ServerResponse } from 'node:http';

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json;charset=UTF-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/**
 * A REST request to a venue whose stand-in has no REST route (Coinbase's and Kraken's books
 * come over the websocket): 404 in the venue's error shape, 405 for a method other than GET.
 */
export function answerNoRest(url: URL, method: string, res: ServerResponse, errorBody: (message: string) => unknown): void {
  if (method !== 'GET' && method !== 'HEAD') sendJson(res, 405, errorBody(`Method ${method} is not allowed on ${url.pathname}.`));
  else sendJson(res, 404, errorBody(`Unknown endpoint ${url.pathname}; this stand-in serves its venue over the websocket only.`));
}
