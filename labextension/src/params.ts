/**
 * The run form: the pipeline's parameters as typed inputs (number, checkbox for bool, text or
 * JSON for str/list/dict), the backend to run on (`GET backends`; unavailable ones disabled,
 * with why), the step cache switch (when the backend has a `cache` option) and the Run button.
 * The backend's options go to `POST runs` as `options`.
 *
 * Values the user typed survive a redraw (the pipeline is described again on every edit) while
 * the parameter keeps its name and type. Only values that differ from the defaults are sent.
 */
import { runIcon } from '@jupyterlab/ui-components';

import {
  IBackend,
  IBackendOption,
  IParameterSpec,
  IPipelineView
} from './api';
import { h, pythonLiteral } from './dom';

/** What the Run button asks for. */
export interface IRunChoice {
  params: Record<string, unknown>;
  backend: string;
  /** The backend's options the form set (by name, as `GET backends` lists them). */
  options: Record<string, unknown>;
}

type Reader = () => { value: unknown } | { error: string };

/** The text an input shows for a value of `type`. */
function shown(type: string, value: unknown): string {
  if (value === null || value === undefined) {
    return '';
  }
  if (typeof value === 'string' && type !== 'list' && type !== 'dict') {
    return value;
  }
  if (typeof value === 'number') {
    return pythonLiteral(type, value);
  }
  return JSON.stringify(value);
}

export class RunForm {
  readonly node = h('div', { class: 'kfnb-RunForm' });

  constructor(private readonly _onRun: (choice: IRunChoice) => void) {
    this._run.append(
      runIcon.element({ tag: 'span', className: 'kfnb-Icon' }),
      this._runLabel
    );
    this._run.addEventListener('click', () => this._submit());
    this._backend.addEventListener('change', () => this._renderBackendDetail());
    this.node.append(
      this._params,
      h(
        'div',
        { class: 'kfnb-RunForm-row' },
        h(
          'label',
          { class: 'kfnb-Field kfnb-Field--grow' },
          h('span', {}, 'Backend'),
          this._backend
        ),
        h(
          'label',
          { class: 'kfnb-Check', title: 'Reuse results of unchanged steps' },
          this._cache,
          'cache'
        )
      ),
      this._backendDetail,
      h('div', { class: 'kfnb-Actions' }, this._run, this._note),
      this._error
    );
    this._cache.checked = true;
    this._update();
  }

  /** Show the parameters of the pipeline of `path` (null: no notebook). */
  setPipeline(view: IPipelineView | null): void {
    if (view?.path !== this._path) {
      this._edits.clear();
      this._path = view?.path ?? null;
    }
    this._view = view;
    this._renderParams();
    this._update();
  }

  setBackends(backends: IBackend[]): void {
    const previous = this._backend.value;
    this._backend.replaceChildren(
      ...backends.map(b =>
        h(
          'option',
          { value: b.name, disabled: !b.available, title: b.detail },
          b.available ? b.name : `${b.name} (unavailable: ${b.detail})`
        )
      )
    );
    this._backends = backends;
    const keep = backends.find(b => b.name === previous && b.available);
    const first = backends.find(b => b.available);
    this._backend.value = keep?.name ?? first?.name ?? '';
    this._renderBackendDetail();
    this._update();
  }

  /** While a run starts: the button shows it and does not take a second click. */
  setBusy(busy: boolean): void {
    this._busy = busy;
    this._runLabel.textContent = busy ? 'Starting…' : 'Run';
    this._run.classList.toggle('kfnb-mod-busy', busy);
    this._update();
  }

  showError(message: string): void {
    this._error.textContent = message;
  }

  private _renderParams(): void {
    const params = this._view?.pipeline?.parameters ?? {};
    const names = Object.keys(params);
    this._readers.clear();
    if (!names.length) {
      this._params.replaceChildren(
        h(
          'p',
          { class: 'kfnb-Muted' },
          this._view?.pipeline ? 'No pipeline parameters.' : ''
        )
      );
      return;
    }
    const focused = document.activeElement as HTMLElement | null;
    const focusName =
      focused?.closest<HTMLElement>('.kfnb-Param')?.dataset.param;
    this._params.replaceChildren(
      h('div', { class: 'kfnb-Heading' }, 'Parameters'),
      ...names.map(name => this._paramField(name, params[name]))
    );
    if (focusName) {
      this._params
        .querySelector<HTMLInputElement>(
          `.kfnb-Param[data-param="${CSS.escape(focusName)}"] input`
        )
        ?.focus();
    }
  }

  private _paramField(name: string, spec: IParameterSpec): HTMLElement {
    const type = spec.type ?? 'any';
    const key = `${name}:${type}`;
    const edit = this._edits.get(key);
    const text = edit !== undefined ? String(edit) : shown(type, spec.default);
    let input: HTMLInputElement;
    let reader: Reader;
    if (type === 'bool') {
      input = h('input', {
        type: 'checkbox',
        checked: edit !== undefined ? edit === true : !!spec.default
      });
      input.addEventListener('change', () =>
        this._edits.set(key, input.checked)
      );
      reader = () => ({ value: input.checked });
    } else if (type === 'int' || type === 'float') {
      input = h('input', {
        class: 'kfnb-Input',
        type: 'number',
        step: type === 'int' ? 1 : 'any',
        value: text
      });
      input.addEventListener('input', () => this._edits.set(key, input.value));
      reader = () => {
        if (input.value.trim() === '') {
          return { value: spec.default };
        }
        const n = Number(input.value);
        if (!Number.isFinite(n) || (type === 'int' && !Number.isInteger(n))) {
          return {
            error: `${name} must be ${type === 'int' ? 'a whole number' : 'a number'}`
          };
        }
        return { value: n };
      };
    } else {
      input = h('input', {
        class: 'kfnb-Input',
        type: 'text',
        spellcheck: 'false',
        value: text,
        placeholder:
          type === 'list' ? '[1, 2]' : type === 'dict' ? '{"key": 1}' : ''
      });
      input.addEventListener('input', () => this._edits.set(key, input.value));
      reader = () => readText(name, type, input.value, spec.default);
    }
    this._readers.set(name, reader);
    return h(
      'label',
      {
        class: 'kfnb-Param kfnb-Field',
        'data-param': name,
        title: `${name}: ${type}, default ${pythonLiteral(type, spec.default)}`
      },
      h(
        'span',
        { class: 'kfnb-Param-name' },
        name,
        h('small', { class: 'kfnb-Param-type' }, type)
      ),
      input
    );
  }

  private _renderBackendDetail(): void {
    const chosen = this._backends.find(b => b.name === this._backend.value);
    this._backendDetail.textContent = chosen
      ? [chosen.detail, chosen.fix ? `Fix: ${chosen.fix}` : '']
          .filter(Boolean)
          .join(' · ')
      : '';
    const cache = this._cacheOption();
    this._cache.disabled = cache === null;
    this._cache.title = cache?.help ?? 'This backend has no step cache';
    this._update();
  }

  /** Enable Run only when it can work; say why not. */
  private _update(): void {
    let why = '';
    if (!this._view) {
      why = 'Open a notebook to run it.';
    } else if (!this._view.ok || !this._view.pipeline) {
      why = 'Fix the problems above to run the pipeline.';
    } else if (
      !this._backends.some(b => b.available && b.name === this._backend.value)
    ) {
      why = this._backends.length
        ? 'No backend is available.'
        : 'Loading backends…';
    }
    this._run.disabled = this._busy || why !== '';
    this._note.textContent = this._busy ? '' : why;
  }

  private _submit(): void {
    const params: Record<string, unknown> = {};
    const defaults = this._view?.pipeline?.parameters ?? {};
    for (const [name, read] of this._readers) {
      const result = read();
      if ('error' in result) {
        this._error.textContent = result.error;
        return;
      }
      if (
        JSON.stringify(result.value) !== JSON.stringify(defaults[name]?.default)
      ) {
        params[name] = result.value;
      }
    }
    this._error.textContent = '';
    const options: Record<string, unknown> = {};
    if (this._cacheOption()) {
      options.cache = this._cache.checked;
    }
    this._onRun({ params, backend: this._backend.value, options });
  }

  /** The chosen backend's `cache` option (a bool), or null when it has none. */
  private _cacheOption(): IBackendOption | null {
    const chosen = this._backends.find(b => b.name === this._backend.value);
    return (
      chosen?.options?.find(o => o.name === 'cache' && o.type === 'bool') ??
      null
    );
  }

  private _path: string | null = null;
  private _view: IPipelineView | null = null;
  private _backends: IBackend[] = [];
  private _busy = false;
  private readonly _edits = new Map<string, unknown>();
  private readonly _readers = new Map<string, Reader>();
  private readonly _params = h('div', { class: 'kfnb-RunForm-params' });
  private readonly _backend = h('select', {
    class: 'kfnb-Select kfnb-RunForm-backend',
    'aria-label': 'backend'
  });
  private readonly _backendDetail = h('p', {
    class: 'kfnb-Muted kfnb-RunForm-backendDetail'
  });
  private readonly _cache = h('input', {
    type: 'checkbox',
    class: 'kfnb-RunForm-cache'
  });
  private readonly _run = h('button', {
    class: 'jp-mod-styled jp-mod-accept kfnb-RunForm-run'
  });
  private readonly _runLabel = h('span', {}, 'Run');
  private readonly _note = h('span', { class: 'kfnb-Muted kfnb-RunForm-note' });
  private readonly _error = h('p', {
    class: 'kfnb-Error kfnb-RunForm-error',
    role: 'alert'
  });
}

/** A str/list/dict (or untyped) parameter from its text input. */
function readText(
  name: string,
  type: string,
  text: string,
  fallback: unknown
): { value: unknown } | { error: string } {
  if (type === 'str') {
    return { value: text };
  }
  if (text.trim() === '') {
    return { value: fallback };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    if (type === 'list' || type === 'dict') {
      return {
        error: `${name} must be JSON (${type === 'list' ? '[1, 2]' : '{"key": 1}'})`
      };
    }
    return { value: text };
  }
  if (type === 'list' && !Array.isArray(value)) {
    return { error: `${name} must be a JSON list` };
  }
  if (
    type === 'dict' &&
    (typeof value !== 'object' || value === null || Array.isArray(value))
  ) {
    return { error: `${name} must be a JSON object` };
  }
  return { value };
}
