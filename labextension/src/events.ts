/**
 * The live event feed of the run store (`GET events`), for every view that shows runs.
 *
 * The feed reads the `text/event-stream` form with `ServerConnection.makeRequest` and the
 * response body's reader (EventSource cannot send the token header) and parses the SSE frames
 * itself. When a stream ends it reconnects with the last event id it saw. When streaming fails
 * twice in a row (no stream could be opened, or it broke before anything came), the feed falls
 * back to polling the JSON form (`events?after=N&wait=0`) every 2 s, for good.
 */
import { ServerConnection } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { eventsUrl, IEvent, isAbort, pollEvents } from './api';

/** How the feed gets its events now. */
export type FeedMode = 'idle' | 'stream' | 'poll' | 'offline';

const POLL_INTERVAL_MS = 2000;
const RECONNECT_DELAY_MS = 1000;
const MAX_BACKOFF_MS = 15000;
const FAILURES_BEFORE_POLLING = 2;

/** One parsed SSE frame. */
export interface ISseFrame {
  id: string | null;
  event: string;
  data: string;
}

/**
 * An incremental parser of `text/event-stream` text: feed it chunks, get complete frames.
 * Comment lines (`: ping`) and frames without data are dropped, as browsers do.
 */
export class SseParser {
  push(chunk: string): ISseFrame[] {
    this._buffer += chunk;
    const frames: ISseFrame[] = [];
    for (;;) {
      const match = /\r\n\r\n|\n\n|\r\r/.exec(this._buffer);
      if (!match) {
        return frames;
      }
      const block = this._buffer.slice(0, match.index);
      this._buffer = this._buffer.slice(match.index + match[0].length);
      const frame = parseBlock(block);
      if (frame) {
        frames.push(frame);
      }
    }
  }

  private _buffer = '';
}

function parseBlock(block: string): ISseFrame | null {
  let id: string | null = null;
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split(/\r\n|\n|\r/)) {
    if (!line || line.startsWith(':')) {
      continue;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) {
      value = value.slice(1);
    }
    if (field === 'id') {
      id = value;
    } else if (field === 'event') {
      event = value;
    } else if (field === 'data') {
      data.push(value);
    }
  }
  return data.length ? { id, event, data: data.join('\n') } : null;
}

/** The store's events, live: `received` fires once per event, in id order. */
export class EventFeed implements IDisposable {
  /** `after`: the last event id already seen; 0 starts from the store's newest event. */
  constructor(after = 0) {
    this._after = after;
  }

  /** Every event with an id above the last one seen. */
  get received(): ISignal<this, IEvent> {
    return this._received;
  }

  /** Fires when the feed switches between streaming, polling and offline. */
  get modeChanged(): ISignal<this, FeedMode> {
    return this._modeChanged;
  }

  get mode(): FeedMode {
    return this._mode;
  }

  /** The id of the last event delivered. */
  get lastId(): number {
    return this._after;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Start reading (once; later calls do nothing). */
  start(): void {
    if (this._started || this._disposed) {
      return;
    }
    this._started = true;
    void this._loop();
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._abort.abort();
    Signal.clearData(this);
  }

  /**
   * Start where the store is now, not at its first event: the JSON form asked for events after
   * an id beyond the last gives the last id back (`last`). Left as is when that fails.
   */
  private async _startFromNow(): Promise<void> {
    if (this._after > 0) {
      return;
    }
    try {
      const batch = await pollEvents(
        Number.MAX_SAFE_INTEGER,
        this._abort.signal
      );
      if (Number.isFinite(batch.last) && batch.last >= 0) {
        this._after = batch.last;
      }
    } catch {
      // the stream below reports what is wrong
    }
  }

  private async _loop(): Promise<void> {
    await this._startFromNow();
    let failures = 0;
    while (!this._disposed && failures < FAILURES_BEFORE_POLLING) {
      const delivered = await this._streamOnce();
      if (this._disposed) {
        return;
      }
      failures = delivered ? 0 : failures + 1;
      await this._sleep(RECONNECT_DELAY_MS);
    }
    await this._poll();
  }

  /** Read one stream until it ends; true when it opened and delivered bytes. */
  private async _streamOnce(): Promise<boolean> {
    const settings = ServerConnection.makeSettings();
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    let delivered = false;
    try {
      const response = await ServerConnection.makeRequest(
        eventsUrl(this._after, settings),
        {
          headers: { Accept: 'text/event-stream' },
          signal: this._abort.signal
        },
        settings
      );
      const type = response.headers.get('Content-Type') ?? '';
      if (
        !response.ok ||
        !response.body ||
        !type.includes('text/event-stream')
      ) {
        void response.body?.cancel();
        return false;
      }
      this._setMode('stream');
      reader = response.body.getReader();
      const decoder = new TextDecoder();
      const parser = new SseParser();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) {
          break;
        }
        delivered = true;
        for (const frame of parser.push(
          decoder.decode(value, { stream: true })
        )) {
          this._deliver(frame);
        }
      }
    } catch (error) {
      if (!isAbort(error)) {
        console.debug('kfnb: event stream broke', error);
      }
    } finally {
      reader?.releaseLock();
    }
    return delivered;
  }

  private _deliver(frame: ISseFrame): void {
    let event: IEvent;
    try {
      event = JSON.parse(frame.data) as IEvent;
    } catch {
      return;
    }
    const id =
      frame.id !== null && frame.id !== '' ? Number(frame.id) : event.id;
    if (!Number.isFinite(id) || id <= this._after) {
      return;
    }
    this._after = id;
    this._received.emit(event);
  }

  private async _poll(): Promise<void> {
    let delay = POLL_INTERVAL_MS;
    while (!this._disposed) {
      try {
        const batch = await pollEvents(this._after, this._abort.signal);
        this._setMode('poll');
        for (const event of batch.events) {
          if (event.id > this._after) {
            this._after = event.id;
            this._received.emit(event);
          }
        }
        if (Number.isFinite(batch.last) && batch.last > this._after) {
          this._after = batch.last;
        }
        delay = POLL_INTERVAL_MS;
      } catch (error) {
        if (this._disposed || isAbort(error)) {
          return;
        }
        this._setMode('offline');
        delay = Math.min(delay * 2, MAX_BACKOFF_MS);
      }
      await this._sleep(delay);
    }
  }

  private _setMode(mode: FeedMode): void {
    if (mode !== this._mode) {
      this._mode = mode;
      this._modeChanged.emit(mode);
    }
  }

  private _sleep(ms: number): Promise<void> {
    const signal = this._abort.signal;
    return new Promise(resolve => {
      const onAbort = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private _after: number;
  private _started = false;
  private _disposed = false;
  private _mode: FeedMode = 'idle';
  private readonly _abort = new AbortController();
  private readonly _received = new Signal<this, IEvent>(this);
  private readonly _modeChanged = new Signal<this, FeedMode>(this);
}
