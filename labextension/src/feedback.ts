/**
 * Feedback the panel gives while it works: a progress bar while something long goes on
 * (reading the pipeline, starting a run) and error messages that stay until dismissed or
 * replaced by the next answer of the same kind.
 */
import { closeIcon } from '@jupyterlab/ui-components';

import { h } from './dom';

const SHOW_AFTER_MS = 150;

/** An indeterminate progress bar, shown while at least one task is running. */
export class Busy {
  readonly node = h('div', {
    class: 'kfnb-Busy',
    role: 'progressbar',
    'aria-hidden': 'true',
    hidden: true
  });

  /** Count a task in; the returned function counts it out (call it once). */
  begin(what: string): () => void {
    const token = Symbol(what);
    this._tasks.set(token, what);
    this._update();
    return () => {
      this._tasks.delete(token);
      this._update();
    };
  }

  /** Run `task` with the bar shown. */
  async during<T>(what: string, task: () => Promise<T>): Promise<T> {
    const end = this.begin(what);
    try {
      return await task();
    } finally {
      end();
    }
  }

  private _update(): void {
    const busy = this._tasks.size > 0;
    // Short tasks do not flash the bar: it shows once a task has run for SHOW_AFTER_MS.
    if (busy && this.node.hidden && !this._timer) {
      this._timer = setTimeout(() => {
        this._timer = 0;
        this.node.hidden = this._tasks.size === 0;
      }, SHOW_AFTER_MS);
    }
    if (!busy) {
      clearTimeout(this._timer);
      this._timer = 0;
      this.node.hidden = true;
    }
    this.node.dataset.busy = busy ? 'true' : 'false';
    this.node.setAttribute('aria-hidden', busy ? 'false' : 'true');
    this.node.title = [...this._tasks.values()].join('\n');
    this.node.setAttribute('aria-valuetext', this.node.title);
  }

  private readonly _tasks = new Map<symbol, string>();
  private _timer: ReturnType<typeof setTimeout> | 0 = 0;
}

/** Error messages by topic: a new message on a topic replaces the old one; `clear` drops it. */
export class ErrorBox {
  readonly node = h('div', { class: 'kfnb-Panel-errors' });

  show(topic: string, message: string): void {
    this.clear(topic);
    const dismiss = h('button', {
      class: 'kfnb-Panel-errorClose',
      title: 'Dismiss',
      'aria-label': 'Dismiss'
    });
    closeIcon.element({ container: dismiss, height: '14px', width: '14px' });
    const item = h(
      'div',
      { class: 'kfnb-Panel-error', role: 'alert', 'data-topic': topic },
      h('span', {}, message),
      dismiss
    );
    dismiss.addEventListener('click', () => this.clear(topic));
    this._items.set(topic, item);
    this.node.append(item);
  }

  clear(topic: string): void {
    this._items.get(topic)?.remove();
    this._items.delete(topic);
  }

  private readonly _items = new Map<string, HTMLElement>();
}
