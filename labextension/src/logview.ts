/**
 * One step's log, streamed: `GET runs/{id}/steps/{step}/log?offset=` is read from where it
 * stopped, every second while the step may still write (or at once when a step event pokes
 * it), until the server says `done`.
 */
import { errorMessage, getStepLog, KfnbApiError, TERMINAL_STEP } from './api';
import { h } from './dom';

const POLL_MS = 1000;
const MAX_CHARS = 1_000_000; // the view keeps the tail of longer logs

export class LogView {
  readonly node = h('pre', {
    class: 'kfnb-Log',
    tabindex: 0,
    'aria-live': 'polite'
  });

  constructor(
    readonly runId: string,
    readonly step: string,
    private _status: string
  ) {
    this.node.dataset.step = step;
    this.node.textContent = '';
    void this._loop();
  }

  /** The step's status changed (a step event): read again now. */
  poke(status: string): void {
    this._status = status;
    this._wake?.();
  }

  dispose(): void {
    this._disposed = true;
    this._wake?.();
  }

  private async _loop(): Promise<void> {
    let empty = true;
    let idleAfterEnd = 0;
    while (!this._disposed) {
      let chunk;
      try {
        chunk = await getStepLog(this.runId, this.step, this._offset);
      } catch (error) {
        if (!(error instanceof KfnbApiError && error.status === 404)) {
          this._show(
            `\n[kfnb: could not read the log: ${errorMessage(error)}]\n`
          );
          this._markEmpty(false);
          return;
        }
        chunk = null; // no log yet: the step has not started
      }
      if (this._disposed) {
        return;
      }
      if (chunk) {
        if (chunk.text) {
          this._show(chunk.text);
          empty = false;
        }
        this._offset = chunk.offset;
        if (chunk.done) {
          break;
        }
        if (chunk.text) {
          continue; // more may be waiting
        }
        if (TERMINAL_STEP.has(this._status) && ++idleAfterEnd > 3) {
          break; // the step ended and nothing more comes
        }
      } else if (TERMINAL_STEP.has(this._status)) {
        break; // ended without a log (cached, skipped)
      }
      await this._sleep(POLL_MS);
    }
    this._markEmpty(empty);
  }

  private _show(text: string): void {
    const atBottom =
      this.node.scrollHeight - this.node.scrollTop - this.node.clientHeight <
      24;
    let all = (this.node.textContent ?? '') + text;
    if (all.length > MAX_CHARS) {
      all = all.slice(all.length - MAX_CHARS);
    }
    this.node.textContent = all;
    if (atBottom) {
      this.node.scrollTop = this.node.scrollHeight;
    }
  }

  private _markEmpty(empty: boolean): void {
    if (this._disposed) {
      return;
    }
    this.node.classList.add('kfnb-Log--done');
    if (empty && !this.node.textContent) {
      this.node.textContent =
        this._status === 'CACHED'
          ? '(cached: the step did not run; its results came from an earlier run)'
          : '(no output)';
      this.node.classList.add('kfnb-Log--empty');
    }
  }

  private _sleep(ms: number): Promise<void> {
    return new Promise(resolve => {
      const done = (): void => {
        clearTimeout(timer);
        this._wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this._wake = done;
    });
  }

  private _offset = 0;
  private _disposed = false;
  private _wake: (() => void) | null = null;
}
