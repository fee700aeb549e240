/**
 * The live event feed of the run store (`GET events`), for every view that shows runs.
 *
 * The stream (`text/event-stream`) is read with `@microsoft/fetch-event-source` through
 * `ServerConnection.makeRequest`, so it carries the same token and XSRF headers as every other
 * request (EventSource cannot send them). The library parses the frames and reconnects with the
 * last event id it saw. When streaming fails twice in a row (no stream could be opened, or it
 * broke at once without an event), the feed falls back to polling the JSON form
 * (`events?after=N&wait=0`) with a `@lumino/polling` `Poll`, which backs off while the server
 * does not answer. While it polls, the feed tries the stream again now and then (after 10 s,
 * then less and less often) and goes back to streaming once the server serves it again.
 *
 * Modes (`mode`, `modeChanged`): `idle` before the first connection, `stream`, `poll` (the
 * last poll succeeded), `offline` (the last poll failed).
 */
import { ServerConnection } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';
import {
  EventSourceMessage,
  fetchEventSource
} from '@microsoft/fetch-event-source';

import { eventsUrl, IEvent, IEventBatch, isAbort, pollEvents } from './api';

/** How the feed gets its events now. */
export type FeedMode = 'idle' | 'stream' | 'poll' | 'offline';

/** The feed's timing (tests shorten it). */
export interface IEventFeedOptions {
  /** Between two polls (ms). */
  pollInterval?: number;
  /** The longest wait between polls while the server does not answer (ms; at least 30 s). */
  maxPollBackoff?: number;
  /** Before reconnecting a stream that broke (ms). */
  reconnectDelay?: number;
  /** Failed stream tries in a row before the feed polls. */
  failuresBeforePolling?: number;
  /** A stream that stays open this long (or delivers an event) counts as working (ms). */
  healthyAfter?: number;
  /** While polling: the first wait before trying the stream again (ms); it doubles after each failed try. */
  streamRetry?: number;
  /** ... up to this (ms). */
  maxStreamRetry?: number;
}

const DEFAULTS: Required<IEventFeedOptions> = {
  pollInterval: 2000,
  maxPollBackoff: 30000,
  reconnectDelay: 1000,
  failuresBeforePolling: 2,
  healthyAfter: 5000,
  streamRetry: 10000,
  maxStreamRetry: 120000
};

/** Thrown inside a stream connection to end it (fetch-event-source then rejects). */
class StreamEnded extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StreamEnded';
  }
}

/** The store's events, live: `received` fires once per event, in id order. */
export class EventFeed implements IDisposable {
  /** `after`: the last event id already seen; 0 starts from the store's newest event. */
  constructor(after = 0, options: IEventFeedOptions = {}) {
    this._after = after;
    this._options = { ...DEFAULTS, ...options };
    this._retryDelay = this._options.streamRetry;
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
    void this._begin();
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._abort.abort();
    this._poll?.dispose();
    Signal.clearData(this);
  }

  private async _begin(): Promise<void> {
    await this._startFromNow();
    if (this._disposed) {
      return;
    }
    const opened = await this._connect(this._options.failuresBeforePolling);
    if (!opened) {
      this._fallBack();
    }
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

  /**
   * Stream from the last id seen, reconnecting when the stream breaks. Resolves true once a
   * stream opened, false when `tries` tries in a row failed before one did (then nothing more
   * happens here). A stream that opened and then fails `failuresBeforePolling` times in a row
   * falls back to polling by itself.
   */
  private _connect(tries: number): Promise<boolean> {
    const { reconnectDelay, healthyAfter, failuresBeforePolling } =
      this._options;
    const settings = ServerConnection.makeSettings();
    let failures = 0;
    let everOpened = false;
    let openedAt = 0;
    let delivered = false;
    return new Promise<boolean>(resolveOpened => {
      fetchEventSource(eventsUrl(this._after, settings), {
        signal: this._abort.signal,
        // the server pings every 15 s: an open stream is cheap, and runs go on while hidden
        openWhenHidden: true,
        fetch: (input, init) =>
          ServerConnection.makeRequest(String(input), init ?? {}, settings),
        onopen: async response => {
          const type = response.headers.get('Content-Type') ?? '';
          if (!response.ok || !type.includes('text/event-stream')) {
            void response.body?.cancel().catch(() => undefined);
            throw new StreamEnded(
              `the event stream was refused (${response.status} ${type})`
            );
          }
          openedAt = Date.now();
          delivered = false;
          this._setMode('stream');
          if (!everOpened) {
            everOpened = true;
            resolveOpened(true);
          }
        },
        onmessage: message => {
          delivered = true;
          this._deliver(message);
        },
        onclose: () => {
          throw new StreamEnded('the server ended the event stream');
        },
        onerror: error => {
          const healthy =
            openedAt > 0 &&
            (delivered || Date.now() - openedAt >= healthyAfter);
          if (healthy) {
            this._retryDelay = this._options.streamRetry;
          }
          failures = healthy ? 0 : failures + 1;
          openedAt = 0;
          if (!isAbort(error) && !(error instanceof StreamEnded)) {
            console.debug('kfnb: event stream broke', error);
          }
          if (failures >= (everOpened ? failuresBeforePolling : tries)) {
            throw error; // give up: fetchEventSource rejects
          }
          return reconnectDelay;
        }
      }).then(
        () => resolveOpened(false), // disposed
        () => {
          resolveOpened(false);
          if (everOpened && !this._disposed) {
            this._fallBack();
          }
        }
      );
    });
  }

  /** Poll the JSON form (from now on, until a stream works again). */
  private _fallBack(): void {
    if (this._disposed) {
      return;
    }
    this._nextTry = Date.now() + this._retryDelay;
    if (!this._poll) {
      this._poll = new Poll({
        auto: false,
        name: 'kfnb:events',
        frequency: {
          interval: this._options.pollInterval,
          backoff: true,
          max: this._options.maxPollBackoff
        },
        factory: () => this._pollOnce()
      });
    }
    void this._poll.start();
  }

  /** One poll; a failure rejects (the Poll backs off). Then maybe a try of the stream. */
  private async _pollOnce(): Promise<void> {
    let batch: IEventBatch;
    try {
      batch = await pollEvents(this._after, this._abort.signal);
    } catch (error) {
      if (!this._disposed && !isAbort(error)) {
        this._setMode('offline');
      }
      throw error;
    }
    this._setMode('poll');
    for (const event of batch.events) {
      this._emit(event);
    }
    if (Number.isFinite(batch.last) && batch.last > this._after) {
      this._after = batch.last;
    }
    if (Date.now() >= this._nextTry && !this._disposed) {
      // The server answers: does it stream again? The Poll waits for this try.
      const poll = this._poll;
      if (await this._connect(1)) {
        void poll?.stop();
      } else {
        this._retryDelay = Math.min(
          this._retryDelay * 2,
          this._options.maxStreamRetry
        );
        this._nextTry = Date.now() + this._retryDelay;
      }
    }
  }

  private _deliver(message: EventSourceMessage): void {
    let event: IEvent;
    try {
      event = JSON.parse(message.data) as IEvent;
    } catch {
      return;
    }
    this._emit(event, message.id !== '' ? Number(message.id) : event.id);
  }

  /** Deliver `event` unless its id (the frame's, else its own) is not above the last one. */
  private _emit(event: IEvent, id = event.id): void {
    if (!Number.isFinite(id) || id <= this._after) {
      return;
    }
    this._after = id;
    this._received.emit(event);
  }

  private _setMode(mode: FeedMode): void {
    if (mode !== this._mode && !this._disposed) {
      this._mode = mode;
      this._modeChanged.emit(mode);
    }
  }

  private _after: number;
  private readonly _options: Required<IEventFeedOptions>;
  private _started = false;
  private _disposed = false;
  private _mode: FeedMode = 'idle';
  private _poll: Poll | null = null;
  /** While polling: when to try the stream next, and the wait after that. */
  private _nextTry = 0;
  private _retryDelay: number;
  private readonly _abort = new AbortController();
  private readonly _received = new Signal<this, IEvent>(this);
  private readonly _modeChanged = new Signal<this, FeedMode>(this);
}
