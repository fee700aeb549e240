/**
 * The REST contract (v3) of the kfnb server extension, mirrored from `server_ext/API.md`.
 *
 * Every route lives under `<base_url>/kfnb/api/`. Successful responses are JSON bodies typed
 * below; errors are JSON bodies `{code, message, fix, where}` (see `IErrorBody`) with status
 * 400/404/409/500.
 * Keep this file and the server in step: the handshake (`API_VERSION`) fails loudly when they
 * drift apart. The live event stream is read in `events.ts`.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { version as packageVersion } from '../../package.json';

/** Version of the REST contract this frontend speaks (`api` in `GET /kfnb/api/version`). */
export const API_VERSION = 3;

/** Version of this frontend bundle (npm form, e.g. `0.1.0` or `0.2.0-alpha.1`). */
export const FRONTEND_VERSION: string = packageVersion;

/** `GET /kfnb/api/version` */
export interface IVersionInfo {
  /** Version of the installed `kfnb` Python package (PEP 440 form). */
  version: string;
  /** Version of the REST contract the server speaks. */
  api: number;
}

/** Body of every error response: the error's own attributes, never text to parse. */
export interface IErrorBody {
  code: number;
  /** What went wrong (without where and fix). */
  message: string;
  /** How to fix it. */
  fix: string | null;
  /** Where it went wrong: a notebook cell, a setting, a file... */
  where: string | null;
  /** The notebook cell of an error in a notebook (0-based, all cells counted). */
  cell_index?: number | null;
  cell_line?: string | null;
}

/** An error response of the kfnb server extension. */
export class KfnbApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly fix: string | null = null,
    readonly where: string | null = null
  ) {
    super(message);
    this.name = 'KfnbApiError';
  }

  /** One line for people: `where: message. Fix: fix`. */
  get text(): string {
    const what = this.where ? `${this.where}: ${this.message}` : this.message;
    return this.fix ? `${what.replace(/[. ]+$/, '')}. Fix: ${this.fix}` : what;
  }
}

// ---------------------------------------------------------------------------------------------
// Pipelines

/** Something wrong with a notebook as a pipeline; `cell_index` is null for pipeline-wide ones. */
export interface IProblem {
  message: string;
  cell_index: number | null;
  cell_line?: string | null;
  fix?: string | null;
  where?: string | null;
}

/** A pipeline parameter: its type (`int`, `float`, `bool`, `str`, `list`, `dict`...) and default. */
export interface IParameterSpec {
  type: string | null;
  default: unknown;
}

/** One step of the pipeline IR (`kfnb.dag.Step`), as `describe --json` prints it. */
export interface IStep {
  name: string;
  /** Indices of the notebook cells the step runs (0-based, all cells counted). */
  cells: number[];
  after: string[];
  /** variable -> the step that provides it */
  inputs: Record<string, string>;
  outputs: string[];
  /** e.g. `{"nvidia.com/gpu": "1", "cpu": "2", "memory": "4Gi"}` */
  resources: Record<string, string>;
  image: string | null;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  retries: number;
  timeout: number | null;
  cache: boolean;
  env: Record<string, string>;
  node_selector: Record<string, string>;
  tolerations: unknown[];
}

/** An edge of the DAG; `variables` is empty for an explicit `prev:` edge. */
export interface IEdge {
  source: string;
  target: string;
  variables: string[];
}

export interface IMetricSpec {
  name: string;
  step: string;
}

export interface IPipeline {
  name: string;
  description: string;
  experiment: string | null;
  image: string | null;
  parameters: Record<string, IParameterSpec>;
  steps: IStep[];
  edges: IEdge[];
  /** Step names in run order. */
  order: string[];
  metrics: IMetricSpec[];
}

/** `GET|POST pipeline`: the pipeline of a notebook, or why it has none. */
export interface IPipelineView {
  path: string;
  ok: boolean;
  problems: IProblem[];
  pipeline: IPipeline | null;
}

/** `GET pipeline?path=P`: the pipeline of the saved notebook file. */
export function getPipeline(
  path: string,
  signal?: AbortSignal
): Promise<IPipelineView> {
  return requestAPI<IPipelineView>(`pipeline${query({ path })}`, { signal });
}

/** `POST pipeline`: the pipeline of a live (maybe unsaved) notebook model at `path`. */
export function describeNotebook(
  path: string,
  notebook: unknown,
  signal?: AbortSignal
): Promise<IPipelineView> {
  return requestAPI<IPipelineView>('pipeline', {
    method: 'POST',
    body: JSON.stringify({ path, notebook }),
    signal
  });
}

// ---------------------------------------------------------------------------------------------
// Backends

/** One option of a backend: what `POST runs` takes in `options`. */
export interface IBackendOption {
  name: string;
  type: 'int' | 'float' | 'bool' | 'str' | 'list';
  /** The value when none is given (null: detected where it runs). */
  default: unknown;
  help: string;
  /** Environment variables that set it on the server. */
  env: string[];
  nullable: boolean;
}

export interface IBackend {
  name: string;
  available: boolean;
  /** What it runs on, or why it is not available. */
  detail: string;
  /** What makes an unavailable backend available. */
  fix: string | null;
  options: IBackendOption[];
}

/** `GET backends` */
export function getBackends(): Promise<IBackend[]> {
  return requestAPI<IBackend[]>('backends');
}

// ---------------------------------------------------------------------------------------------
// Runs

export type RunStatus =
  'PENDING' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELING' | 'CANCELED';
export type StepStatus =
  | 'PENDING'
  | 'RUNNING'
  | 'SUCCEEDED'
  | 'FAILED'
  | 'SKIPPED'
  | 'CANCELED'
  | 'CACHED';

export const TERMINAL_RUN: ReadonlySet<string> = new Set([
  'SUCCEEDED',
  'FAILED',
  'CANCELED'
]);
export const TERMINAL_STEP: ReadonlySet<string> = new Set([
  'SUCCEEDED',
  'FAILED',
  'SKIPPED',
  'CANCELED',
  'CACHED'
]);

/** One step of a recorded run. */
export interface IStepRun {
  run_id: string;
  name: string;
  status: StepStatus;
  attempt: number;
  started_at: number | null;
  finished_at: number | null;
  output_notebook: string | null;
  log: string | null;
  error: Record<string, unknown> | null;
  gpus: string[];
  hash: string | null;
  /** `RUN_ID/STEP` whose results a CACHED step reused. */
  cached_from: string | null;
}

export type RunKind = 'pipeline' | 'train' | 'tune' | 'trial' | 'batch';

/** A recorded run (`kfnb.tracking.Run.to_dict()`, its pipeline apart, plus `notebook_path`). */
export interface IRun {
  id: string;
  kind: RunKind;
  name: string;
  status: RunStatus;
  backend: string;
  /** The notebook's file path as the store has it. */
  notebook: string | null;
  /** The run's notebook as a contents path (null when outside the server root). */
  notebook_path?: string | null;
  params: Record<string, unknown>;
  /** Latest value of each metric; non-finite values are null. */
  metrics: Record<string, number | null>;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  error: string | null;
  /** The run this one belongs to (the tune run of a trial, the batch run of a sweep...). */
  parent_id: string | null;
  /** Runs whose parent this run is (`listRuns({parent: id})` lists them). */
  child_count: number;
  /** A run that lives elsewhere (KFP): its id there, `url` of its UI page... */
  remote: ({ url?: string } & Record<string, unknown>) | null;
  steps: IStepRun[];
  /** What the run ran, as stored when it was submitted, without `pipeline` (given apart). */
  spec: Record<string, unknown> | null;
  /**
   * The pipeline the run ran, as stored when it was submitted: draw a run from this, never
   * from the notebook's current state. Null for runs recorded before runs kept it.
   */
  pipeline: IPipeline | null;
}

export interface IRunRequest {
  path: string;
  /** Typed parameter values. */
  params?: Record<string, unknown>;
  /** Parameter values as typed texts, read like the CLI's `-p NAME TEXT`. */
  param_strings?: Record<string, string>;
  backend: string;
  /** The backend's options by name (`IBackend.options`). */
  options?: Record<string, unknown>;
}

export interface IRunQuery {
  notebook?: string;
  status?: RunStatus[];
  kind?: RunKind;
  /** Only the children of this run. */
  parent?: string;
  /** 1: top-level runs only. */
  roots?: 0 | 1;
  limit?: number;
  offset?: number;
}

export interface IRunList {
  runs: IRun[];
  total: number;
}

export interface IMetricValue {
  name: string;
  value: number | null;
  step: number | null;
  source: string | null;
  timestamp: number;
}

export interface ILogChunk {
  text: string;
  /** The offset to ask for next (bytes). */
  offset: number;
  /** The step ended and everything was read. */
  done: boolean;
}

/** `POST runs` */
export function startRun(request: IRunRequest): Promise<IRun> {
  return requestAPI<IRun>('runs', {
    method: 'POST',
    body: JSON.stringify(request)
  });
}

/** `GET runs`: newest first. */
export function listRuns(q: IRunQuery = {}): Promise<IRunList> {
  return requestAPI<IRunList>(`runs${query({ ...q })}`);
}

/** `GET runs/{id}` (id or unique prefix) */
export function getRun(id: string): Promise<IRun> {
  return requestAPI<IRun>(`runs/${enc(id)}`);
}

/** `POST runs/{id}/cancel`: 409 when the run already ended. */
export function cancelRun(id: string): Promise<IRun> {
  return requestAPI<IRun>(`runs/${enc(id)}/cancel`, { method: 'POST' });
}

/** `GET runs/{id}/metrics`: every logged value, oldest first. */
export async function getMetrics(id: string): Promise<IMetricValue[]> {
  const body = await requestAPI<{ metrics: IMetricValue[] }>(
    `runs/${enc(id)}/metrics`
  );
  return body.metrics;
}

/** `GET runs/{id}/steps/{step}/log?offset=&limit=` */
export function getStepLog(
  id: string,
  step: string,
  offset = 0,
  limit = 65536
): Promise<ILogChunk> {
  return requestAPI<ILogChunk>(
    `runs/${enc(id)}/steps/${enc(step)}/log${query({ offset, limit })}`
  );
}

/** `POST runs/{id}/steps/{step}/notebook`: a read-only copy of the executed notebook. */
export function exportStepNotebook(
  id: string,
  step: string
): Promise<{ path: string }> {
  return requestAPI<{ path: string }>(
    `runs/${enc(id)}/steps/${enc(step)}/notebook`,
    {
      method: 'POST'
    }
  );
}

// ---------------------------------------------------------------------------------------------
// Live updates (the stream itself is read in events.ts)

/** A store event: `kind` "run" (`data.status`), "step" (`data.step`, `data.status`)... */
export interface IEvent {
  id: number;
  run_id: string;
  time: number;
  kind: string;
  data: Record<string, unknown>;
}

export interface IEventBatch {
  events: IEvent[];
  last: number;
}

/** `GET events?after=N&wait=0` (JSON): the polling fallback of the event stream. */
export function pollEvents(
  after: number,
  signal?: AbortSignal
): Promise<IEventBatch> {
  return requestAPI<IEventBatch>(`events${query({ after, wait: 0 })}`, {
    headers: { Accept: 'application/json' },
    signal
  });
}

/** URL of `GET events?after=N` (the `text/event-stream` form). */
export function eventsUrl(
  after: number,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): string {
  return (
    URLExt.join(settings.baseUrl, 'kfnb', 'api', 'events') + query({ after })
  );
}

// ---------------------------------------------------------------------------------------------
// Handshake

/** `GET /kfnb/api/version`: the server's package version and REST contract version. */
export function getVersion(): Promise<IVersionInfo> {
  return requestAPI<IVersionInfo>('version');
}

/** One entry of `GET /kfnb/api/pool`: a pool of fresh kernels the server keeps ready. */
export interface IKernelPool {
  kernel_name: string;
  /** Kernels kept ready when idle. */
  size: number;
  /** Fresh kernels waiting for a step. */
  ready: number;
  starting: number;
  demand: number;
  live: number;
  /** Kernels started since the server began. */
  started: number;
  /** Whether kernels are forked from a pre-imported server. */
  fork_server: boolean;
  preload: string[];
}

/** `GET /kfnb/api/pool`: the server's warm kernel pools. */
export function getPools(): Promise<IKernelPool[]> {
  return requestAPI<IKernelPool[]>('pool');
}

/**
 * Normalise an npm (semver) or Python (PEP 440) version string to one comparable form,
 * following hatch-nodejs-version's mapping: `1.2.3-alpha.1` (npm) == `1.2.3a1` (Python).
 */
export function normalizeVersion(version: string): string {
  const match =
    /^v?(\d+)\.(\d+)\.(\d+)(?:[-_.]?(alpha|beta|preview|pre|rc|a|b|c)[-_.]?(\d*))?(?:[-_.]?(dev)[-_.]?(\d*))?(?:\+(.+))?$/i.exec(
      version.trim()
    );
  if (!match) {
    return version.trim().toLowerCase();
  }
  const [, major, minor, patch, preLabel, preN, dev, devN, local] = match;
  const labels: Record<string, string> = {
    alpha: 'a',
    a: 'a',
    beta: 'b',
    b: 'b',
    c: 'rc',
    rc: 'rc',
    pre: 'rc',
    preview: 'rc'
  };
  let result = `${Number(major)}.${Number(minor)}.${Number(patch)}`;
  if (preLabel) {
    result += `${labels[preLabel.toLowerCase()]}${Number(preN || 0)}`;
  }
  if (dev) {
    result += `.dev${Number(devN || 0)}`;
  }
  if (local) {
    result += `+${local.toLowerCase()}`;
  }
  return result;
}

/**
 * The handshake: a list of human-readable problems when this frontend and the server do not
 * belong together (empty when they match).
 */
export function handshakeProblems(server: IVersionInfo): string[] {
  const problems: string[] = [];
  if (normalizeVersion(server.version) !== normalizeVersion(FRONTEND_VERSION)) {
    problems.push(
      `The kfnb frontend is ${FRONTEND_VERSION} but the server runs kfnb ${server.version}. ` +
        'Reinstall kfnb in the environment that runs Jupyter and restart it, then reload this page.'
    );
  }
  if (server.api !== API_VERSION) {
    problems.push(
      `The kfnb server speaks REST API ${server.api}; this frontend expects ${API_VERSION}.`
    );
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Transport

/**
 * Call a kfnb REST endpoint and return its parsed JSON body.
 *
 * @param endPoint path below `kfnb/api/`, e.g. `version` or `runs?limit=5`
 */
export async function requestAPI<T>(
  endPoint: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const [route, search] = splitQuery(endPoint);
  const url = URLExt.join(settings.baseUrl, 'kfnb', 'api', route) + search;
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    if (isAbort(error)) {
      throw error;
    }
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let body: unknown = undefined;
  if (text.length > 0) {
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
  }
  if (!response.ok) {
    const error = body as Partial<IErrorBody> | undefined;
    throw new KfnbApiError(
      response.status,
      error?.message ?? `${response.status} ${response.statusText}`,
      error?.fix ?? null,
      error?.where ?? null
    );
  }
  return body as T;
}

/** Whether `error` is the rejection of an aborted request (to be ignored, not shown). */
export function isAbort(error: unknown): boolean {
  return (error as { name?: string } | null)?.name === 'AbortError';
}

/** A readable one-line message for any error a request can raise. */
export function errorMessage(error: unknown): string {
  if (error instanceof KfnbApiError) {
    return error.text;
  }
  if (error instanceof ServerConnection.NetworkError) {
    return `the server is not reachable (${error.message})`;
  }
  return (error as Error | undefined)?.message ?? String(error);
}

function splitQuery(endPoint: string): [string, string] {
  const at = endPoint.indexOf('?');
  return at < 0 ? [endPoint, ''] : [endPoint.slice(0, at), endPoint.slice(at)];
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}

/** `?a=1&b=x&status=A&status=B` from an object; undefined and null values are left out. */
function query(values: Record<string, unknown>): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(values)) {
    const list = Array.isArray(value) ? value : [value];
    for (const item of list) {
      if (item !== undefined && item !== null) {
        parts.push(
          `${encodeURIComponent(key)}=${encodeURIComponent(String(item))}`
        );
      }
    }
  }
  return parts.length ? `?${parts.join('&')}` : '';
}
