// Requests through `app.inject` for the service tests that push the interleaved fixture and read
// the REST answers back.
import type { FastifyInstance } from 'fastify';
import { expect } from 'vitest';

/** Pushes `messages` in POST bodies of `size`; each answer comes once its predictions are made. */
export async function push({ app }: { app: FastifyInstance }, messages: readonly unknown[], size = 100): Promise<void> {
  for (let i = 0; i < messages.length; i += size) {
    const response = await app.inject({ method: 'POST', url: '/v1/snapshots', payload: messages.slice(i, i + size) as object[] });
    expect(response.statusCode, response.body).toBe(200);
  }
}

/** GET `url`, which must answer 200; its JSON. */
export async function get({ app }: { app: FastifyInstance }, url: string): Promise<unknown> {
  const response = await app.inject({ method: 'GET', url });
  expect(response.statusCode, `${url}: ${response.body}`).toBe(200);
  return response.json();
}
