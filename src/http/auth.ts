// The bearer token check of the routes that change state.
import type { FastifyRequest } from 'fastify';
import { timingSafeEqual } from 'node:crypto';

export type Authorise = (request: FastifyRequest) => Promise<void>;

/** A preHandler that answers 401 unless the bearer token matches (no-op when no token is set). */
export function requireToken(token: string | undefined): Authorise {
  const expected = token === undefined ? null : Buffer.from(token);
  return async (request) => {
    if (!expected) return;
    const header = request.headers.authorization ?? '';
    const presented = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
    if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
      throw Object.assign(new Error('missing or wrong bearer token'), { statusCode: 401, name: 'Unauthorized' });
    }
  };
}
