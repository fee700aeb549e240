import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import type { IEvent } from '../src/api';
import { EventFeed, FeedMode, IEventFeedOptions } from '../src/events';
import { configurePage, event, FakeServer, TOKEN } from './server';

/** Short delays, so the whole machine runs in a few hundred ms. */
const FAST: IEventFeedOptions = {
  pollInterval: 10,
  reconnectDelay: 5,
  healthyAfter: 50,
  streamRetry: 60_000, // no stream retries unless a test asks for them
  maxStreamRetry: 60_000
};

/** Generous: the machine may be busy. */
const WAIT = { timeout: 5000 };

let server: FakeServer;
const feeds: EventFeed[] = [];

function feed(options: IEventFeedOptions = {}, after = 0) {
  const f = new EventFeed(after, { ...FAST, ...options });
  feeds.push(f);
  const received: IEvent[] = [];
  const modes: FeedMode[] = [];
  f.received.connect((_, e) => received.push(e));
  f.modeChanged.connect((_, m) => modes.push(m));
  return { f, received, modes };
}

beforeEach(() => {
  configurePage();
  server = new FakeServer();
  vi.stubGlobal('fetch', server.fetch);
  vi.spyOn(console, 'debug').mockImplementation(() => undefined);
});

afterEach(() => {
  for (const f of feeds.splice(0)) {
    f.dispose();
  }
});

describe('EventFeed', () => {
  it('streams from the store as it is now, once per event, in order', async () => {
    server.events = [event(1), event(2)];
    const { f, received, modes } = feed();
    expect(f.mode).toBe('idle');
    f.start();
    f.start(); // a second start does nothing
    await vi.waitFor(() => expect(f.mode).toBe('stream'), WAIT);
    expect(f.lastId).toBe(2); // the events before the start are not replayed
    server.publish(event(3));
    server.publish(event(4));
    await vi.waitFor(
      () => expect(received.map(e => e.id)).toEqual([3, 4]),
      WAIT
    );
    expect(modes).toEqual(['stream']);
    expect(server.streams).toHaveLength(1);
    expect(server.polls).toHaveLength(1); // the start-from-now page
  });

  it('sends the token and asks for an event stream', async () => {
    const { f } = feed();
    f.start();
    await vi.waitFor(() => expect(f.mode).toBe('stream'), WAIT);
    const [stream] = server.streams;
    expect(stream.headers.get('Authorization')).toBe(`token ${TOKEN}`);
    expect(stream.headers.get('Accept')).toBe('text/event-stream');
    expect(stream.url.pathname).toBe('/lab-base/kfnb/api/events');
  });

  it('drops events it has already delivered', async () => {
    const { f, received } = feed({}, 5);
    f.start();
    await vi.waitFor(() => expect(f.mode).toBe('stream'), WAIT);
    server.publish(event(4));
    server.publish(event(6));
    server.publish(event(6));
    server.publish(event(7));
    await vi.waitFor(
      () => expect(received.map(e => e.id)).toEqual([6, 7]),
      WAIT
    );
  });

  it('reconnects a broken stream from the last event it saw', async () => {
    const { f, received } = feed({ healthyAfter: 0 });
    f.start();
    await vi.waitFor(() => expect(f.mode).toBe('stream'), WAIT);
    server.publish(event(1));
    await vi.waitFor(() => expect(received).toHaveLength(1), WAIT);
    server.breakStreams();
    await vi.waitFor(() => expect(server.openStreams).toBe(1), WAIT);
    expect(server.streams).toHaveLength(2);
    expect(server.streams[1].headers.get('Last-Event-ID')).toBe('1');
    server.publish(event(2));
    await vi.waitFor(
      () => expect(received.map(e => e.id)).toEqual([1, 2]),
      WAIT
    );
    expect(f.mode).toBe('stream');
  });

  it('polls after two failed stream tries in a row', async () => {
    server.streaming = false;
    const { f, received, modes } = feed();
    f.start();
    await vi.waitFor(() => expect(f.mode).toBe('poll'), WAIT);
    expect(server.streams).toHaveLength(2);
    server.events.push(event(1), event(2));
    await vi.waitFor(
      () => expect(received.map(e => e.id)).toEqual([1, 2]),
      WAIT
    );
    expect(modes).toEqual(['poll']);
    const asked = server.polls.length;
    await vi.waitFor(
      () => expect(server.polls.length).toBeGreaterThan(asked + 2),
      WAIT
    );
    expect(server.streams).toHaveLength(2); // not retried before `streamRetry`
  });

  it('goes offline while polls fail, and back to polling', async () => {
    server.streaming = false;
    const { f, modes } = feed();
    f.start();
    await vi.waitFor(() => expect(f.mode).toBe('poll'), WAIT);
    server.up = false;
    await vi.waitFor(() => expect(f.mode).toBe('offline'), WAIT);
    server.up = true;
    await vi.waitFor(() => expect(f.mode).toBe('poll'), WAIT);
    expect(modes).toEqual(['poll', 'offline', 'poll']);
  });

  it('returns to the stream once the server serves it again', async () => {
    server.streaming = false;
    const { f, received, modes } = feed({
      streamRetry: 40,
      maxStreamRetry: 80
    });
    f.start();
    await vi.waitFor(() => expect(f.mode).toBe('poll'), WAIT);
    // still refused: the retries space out (40 ms, 80 ms...) and polling goes on
    await vi.waitFor(
      () => expect(server.streams.length).toBeGreaterThan(3),
      WAIT
    );
    expect(f.mode).toBe('poll');
    server.streaming = true;
    await vi.waitFor(() => expect(f.mode).toBe('stream'), WAIT);
    expect(modes).toEqual(['poll', 'stream']);
    // polling stopped
    const polled = server.polls.length;
    server.publish(event(1));
    await vi.waitFor(() => expect(received.map(e => e.id)).toEqual([1]), WAIT);
    await new Promise(resolve => setTimeout(resolve, 60));
    expect(server.polls.length).toBe(polled);
  });

  it('falls back to polling again when the stream breaks for good', async () => {
    const { f, modes } = feed();
    f.start();
    await vi.waitFor(() => expect(f.mode).toBe('stream'), WAIT);
    server.streaming = false;
    server.breakStreams();
    await vi.waitFor(() => expect(f.mode).toBe('poll'), WAIT);
    expect(modes).toEqual(['stream', 'poll']);
  });

  it('stops every request when disposed', async () => {
    const { f } = feed();
    f.start();
    await vi.waitFor(() => expect(server.openStreams).toBe(1), WAIT);
    const [stream] = server.streams;
    f.dispose();
    expect(f.isDisposed).toBe(true);
    expect(stream.signal.aborted).toBe(true);
    const asked = server.requests.length;
    await new Promise(resolve => setTimeout(resolve, 50));
    expect(server.requests.length).toBe(asked);
    f.dispose(); // twice is fine
  });

  it('stops polling when disposed', async () => {
    server.streaming = false;
    const { f } = feed();
    f.start();
    await vi.waitFor(() => expect(f.mode).toBe('poll'), WAIT);
    f.dispose();
    const asked = server.requests.length;
    await new Promise(resolve => setTimeout(resolve, 50));
    expect(server.requests.length).toBe(asked);
  });
});
