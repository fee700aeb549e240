/**
 * A fake kfnb server for unit tests: it answers `fetch` for `<base>/kfnb/api/...`, streams
 * events on `GET events` (when `streaming` is on) and serves the JSON form with `wait=0`.
 */
import { PageConfig } from '@jupyterlab/coreutils';
import { vi } from 'vitest';

import type { IEvent } from '../src/api';

export const BASE_URL = 'http://localhost:8888/lab-base/';
export const TOKEN = 'secret-token';

/** Point `ServerConnection.makeSettings()` at the fake server. */
export function configurePage(): void {
  PageConfig.setOption('baseUrl', BASE_URL);
  PageConfig.setOption('token', TOKEN);
}

export interface ISeenRequest {
  url: URL;
  method: string;
  headers: Headers;
  signal: AbortSignal;
}

export function event(id: number, kind = 'run'): IEvent {
  return { id, run_id: 'r1', time: id, kind, data: { status: 'RUNNING' } };
}

export function sseFrame(e: IEvent): string {
  return `id: ${e.id}\nevent: ${e.kind}\ndata: ${JSON.stringify(e)}\n\n`;
}

export class FakeServer {
  /** Whether `GET events` (the stream) is served; otherwise it answers 503. */
  streaming = true;
  /** Whether the server answers at all (otherwise fetch fails as when it is down). */
  up = true;
  /** The store's events. */
  events: IEvent[] = [];
  /** Every request, in order. */
  readonly requests: ISeenRequest[] = [];
  /** `fetch` for `vi.stubGlobal`. */
  readonly fetch = vi.fn((input: RequestInfo | URL, init?: RequestInit) =>
    this._answer(new Request(input, init))
  );

  /** The stream requests (events without `wait=0`). */
  get streams(): ISeenRequest[] {
    return this.requests.filter(
      r =>
        r.url.pathname.endsWith('/kfnb/api/events') &&
        r.url.searchParams.get('wait') !== '0'
    );
  }

  /** The JSON polls of `events` (`wait=0`). */
  get polls(): ISeenRequest[] {
    return this.requests.filter(
      r =>
        r.url.pathname.endsWith('/kfnb/api/events') &&
        r.url.searchParams.get('wait') === '0'
    );
  }

  /** Streams still open. */
  get openStreams(): number {
    return this._open.size;
  }

  /** Add an event to the store and push it to every open stream. */
  publish(e: IEvent): void {
    this.events.push(e);
    for (const push of this._open) {
      push(sseFrame(e));
    }
  }

  /** End every open stream as a failing server would (the connection breaks). */
  breakStreams(): void {
    for (const push of [...this._open]) {
      push(null);
    }
  }

  private async _answer(request: Request): Promise<Response> {
    const url = new URL(request.url);
    this.requests.push({
      url,
      method: request.method,
      headers: request.headers,
      signal: request.signal
    });
    if (!this.up) {
      throw new TypeError('fetch failed');
    }
    if (!url.pathname.endsWith('/kfnb/api/events')) {
      return json(
        { code: 404, message: 'no such route', fix: null, where: null },
        404
      );
    }
    const after = Math.max(
      Number(url.searchParams.get('after') ?? 0),
      Number(request.headers.get('Last-Event-ID') ?? 0)
    );
    const newer = this.events.filter(e => e.id > after);
    if (url.searchParams.get('wait') === '0') {
      const lastId = this.events.length
        ? this.events[this.events.length - 1].id
        : 0;
      return json({
        events: newer,
        last: newer.length
          ? newer[newer.length - 1].id
          : Math.min(after, lastId)
      });
    }
    if (!this.streaming) {
      return new Response('no streams here', {
        status: 503,
        headers: { 'Content-Type': 'text/plain' }
      });
    }
    return this._stream(request, newer);
  }

  private _stream(request: Request, backlog: IEvent[]): Response {
    const encoder = new TextEncoder();
    let push: (text: string | null) => void = () => undefined;
    const body = new ReadableStream<Uint8Array>({
      start: controller => {
        push = text => {
          if (text === null) {
            this._open.delete(push);
            controller.error(new TypeError('network error'));
          } else {
            controller.enqueue(encoder.encode(text));
          }
        };
        this._open.add(push);
        for (const e of backlog) {
          push(sseFrame(e));
        }
        request.signal.addEventListener('abort', () => {
          this._open.delete(push);
          try {
            controller.error(new DOMException('aborted', 'AbortError'));
          } catch {
            // already closed
          }
        });
      }
    });
    return new Response(body, {
      status: 200,
      headers: { 'Content-Type': 'text/event-stream; charset=utf-8' }
    });
  }

  private readonly _open = new Set<(text: string | null) => void>();
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json' }
  });
}
