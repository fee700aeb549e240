/**
 * The calls of the kfnb REST contract (`server_ext/openapi.yaml`, prose in `server_ext/API.md`).
 *
 * Every route lives under `<base_url>/kfnb/api/`. The types are not written here: the build
 * generates them from the contract (`jlpm build:types` writes `generated/contract.ts` and
 * `generated/version.ts`), and each exported interface name below is an alias of one contract
 * schema. A contract change this code does not follow fails `tsc`; a server that speaks another
 * contract version fails the handshake (`API_VERSION`). Errors are JSON bodies
 * `{code, message, fix, where}` (see `IErrorBody`) with status 400/403/404/409/500. The live
 * event stream is read in `events.ts`.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { version as packageVersion } from '../../package.json';
import type { components, operations } from './generated/contract';
import { API_VERSION } from './generated/version';

/** Version of the REST contract this frontend speaks (the contract's `info.version`). */
export { API_VERSION };

/** Version of this frontend bundle (npm form, e.g. `0.1.0` or `0.2.0-alpha.1`). */
export const FRONTEND_VERSION: string = packageVersion;

// ---------------------------------------------------------------------------------------------
// The contract's types

type Schemas = components['schemas'];
type OperationId = keyof operations;

/** The JSON body of the `status` answer of the route `op`. */
type Reply<
  Op extends OperationId,
  Status extends keyof operations[Op]['responses']
> = operations[Op]['responses'][Status] extends {
  content: { 'application/json': infer Body };
}
  ? Body
  : never;

/** The JSON body the route `op` takes. */
type RequestBody<Op extends OperationId> =
  NonNullable<operations[Op]['requestBody']> extends {
    content: { 'application/json': infer Body };
  }
    ? Body
    : never;

/** The query parameters of the route `op`. */
type Query<Op extends OperationId> = NonNullable<
  operations[Op]['parameters']['query']
>;

/** `GET /kfnb/api/version`: the kfnb package version and the contract version. */
export type IVersionInfo = Schemas['Version'];
/** Body of every error response: the error's own attributes, never text to parse. */
export type IErrorBody = Schemas['Error'];

/** Something wrong with a notebook as a pipeline; `cell_index` is null for pipeline-wide ones. */
export type IProblem = Schemas['Problem'];
/** A pipeline parameter: its type (`int`, `float`, `bool`, `str`, `list`, `dict`, `any`) and default. */
export type IParameterSpec = Schemas['Parameter'];
/** One step of the pipeline IR (`kfnb.dag.Step`). */
export type IStep = Schemas['Step'];
/** An edge of the DAG; `variables` is empty for an explicit `prev:` edge. */
export type IEdge = Schemas['Edge'];
export type IMetricSpec = Schemas['Pipeline']['metrics'][number];
export type IPipeline = Schemas['Pipeline'];
/** Where the server draws the pipeline's steps and edges. */
export type ILayout = Schemas['Layout'];
export type ILayoutNode = Schemas['LayoutNode'];
export type ILayoutEdge = Schemas['LayoutEdge'];
/** `GET|POST pipeline`: the pipeline of a notebook, or why it has none, and every cell's role. */
export type IPipelineView = Schemas['PipelineView'];
/** One cell of a notebook: what it declares and which step it runs in. */
export type ICellInfo = Schemas['CellInfo'];
export type IDescribeRequest = Schemas['DescribeRequest'];
/** A cell's step as the cell tools set it (`name` null: the cell continues the step above). */
export type IStepSettings = Schemas['StepSettings'];
/** `POST cells/step` */
export type IStepEditRequest = Schemas['StepEditRequest'];
/** The answer of `POST cells/step`: the cell's new tags and source. */
export type IStepEdit = Schemas['StepEdit'];

/** One option of a backend: what `POST runs` takes in `options`. */
export type IBackendOption = Schemas['BackendOption'];
export type IBackend = Schemas['Backend'];

export type RunStatus = Schemas['RunStatus'];
export type StepStatus = Schemas['StepStatus'];
export type RunKind = Schemas['RunKind'];
/** One step of a recorded run. */
export type IStepRun = Schemas['StepRun'];
/** A recorded run; draw it from its own `pipeline`, never from the notebook's current state. */
export type IRun = Schemas['Run'];
/** `POST runs`: `params` typed values, `param_strings` texts the server reads by type. */
export type IRunRequest = Schemas['RunRequest'];
/** The filters and page of `GET runs`. */
export type IRunQuery = Query<'listRuns'>;
export type IRunList = Schemas['RunList'];
export type IMetricValue = Schemas['Metric'];
export type ILogChunk = Schemas['LogPage'];
export type INotebookCopy = Schemas['NotebookCopy'];

/** `POST studies`: a study of the saved notebook (`space`, `objective`, `trials`...). */
export type IStudyRequest = Schemas['StudyRequest'];
/** `GET studies/{id}`: the study's settings, counts per state, best trial, trials and plots. */
export type IStudyView = Schemas['StudyView'];
/** What a study searches and how (its `StudySpec`, as recorded). */
export type IStudySettings = Schemas['StudySettings'];
/** One trial of a study: number, state (PRUNED too), parameters, objective value, duration. */
export type ITrial = Schemas['Trial'];
export type ITrialCounts = Schemas['TrialCounts'];
/** The study's plots as SVG documents drawn by the server. */
export type IStudyPlots = Schemas['StudyPlots'];

/** A store event: `kind` "run" (`data.status`), "step" (`data.step`, `data.status`)... */
export type IEvent = Schemas['Event'];
export type IEventBatch = Schemas['EventPage'];

/** One entry of `GET pool`: a pool of fresh kernels the server keeps ready. */
export type IKernelPool = Schemas['Pool'];

export const TERMINAL_RUN: ReadonlySet<string> = new Set<RunStatus>([
  'SUCCEEDED',
  'FAILED',
  'CANCELED',
  'PRUNED'
]);
export const TERMINAL_STEP: ReadonlySet<string> = new Set<StepStatus>([
  'SUCCEEDED',
  'FAILED',
  'SKIPPED',
  'CANCELED',
  'CACHED'
]);

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
// Pipelines and cells

/** `GET pipeline?path=P`: the pipeline of the saved notebook file. */
export function getPipeline(
  path: string,
  signal?: AbortSignal
): Promise<IPipelineView> {
  return requestAPI<Reply<'describePipeline', 200>>(
    `pipeline${query({ path })}`,
    { signal }
  );
}

/** `POST pipeline`: the pipeline of a live (maybe unsaved) notebook model at `path`. */
export function describeNotebook(
  path: string,
  notebook: IDescribeRequest['notebook'],
  signal?: AbortSignal
): Promise<IPipelineView> {
  const body: RequestBody<'describeNotebookModel'> = { path, notebook };
  return requestAPI<Reply<'describeNotebookModel', 200>>('pipeline', {
    method: 'POST',
    body: JSON.stringify(body),
    signal
  });
}

/**
 * `POST cells/step`: make one cell of a live notebook start (or, with `step.name` null, stop
 * starting) a step. The server checks the edit and answers the cell's new tags and source;
 * nothing is written on the server: apply the answer to the notebook model.
 */
export function editCellStep(
  request: IStepEditRequest,
  signal?: AbortSignal
): Promise<IStepEdit> {
  const body: RequestBody<'editCellStep'> = request;
  return requestAPI<Reply<'editCellStep', 200>>('cells/step', {
    method: 'POST',
    body: JSON.stringify(body),
    signal
  });
}

// ---------------------------------------------------------------------------------------------
// Backends

/** `GET backends` */
export function getBackends(): Promise<IBackend[]> {
  return requestAPI<Reply<'listBackends', 200>>('backends');
}

// ---------------------------------------------------------------------------------------------
// Runs

/** `POST runs` */
export function startRun(request: IRunRequest): Promise<IRun> {
  const body: RequestBody<'startRun'> = request;
  return requestAPI<Reply<'startRun', 201>>('runs', {
    method: 'POST',
    body: JSON.stringify(body)
  });
}

/** `GET runs`: newest first. */
export function listRuns(q: IRunQuery = {}): Promise<IRunList> {
  return requestAPI<Reply<'listRuns', 200>>(`runs${query({ ...q })}`);
}

/** `GET runs/{id}` (id or unique prefix) */
export function getRun(id: string): Promise<IRun> {
  return requestAPI<Reply<'getRun', 200>>(`runs/${enc(id)}`);
}

/** `POST runs/{id}/cancel`: 409 when the run already ended. */
export function cancelRun(id: string): Promise<IRun> {
  return requestAPI<Reply<'cancelRun', 202>>(`runs/${enc(id)}/cancel`, {
    method: 'POST'
  });
}

/** `GET runs/{id}/metrics`: every logged value, oldest first. */
export async function getMetrics(id: string): Promise<IMetricValue[]> {
  const body = await requestAPI<Reply<'getRunMetrics', 200>>(
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
  const q: Query<'getStepLog'> = { offset, limit };
  return requestAPI<Reply<'getStepLog', 200>>(
    `runs/${enc(id)}/steps/${enc(step)}/log${query(q)}`
  );
}

/** `POST runs/{id}/steps/{step}/notebook`: a read-only copy of the executed notebook. */
export function exportStepNotebook(
  id: string,
  step: string
): Promise<INotebookCopy> {
  return requestAPI<Reply<'copyStepNotebook', 201>>(
    `runs/${enc(id)}/steps/${enc(step)}/notebook`,
    { method: 'POST' }
  );
}

// ---------------------------------------------------------------------------------------------
// Studies (hyperparameter tuning); stop one with `cancelRun`

/** `POST studies`: start a study of the saved notebook; its run (kind `tune`). */
export function startStudy(request: IStudyRequest): Promise<IRun> {
  const body: RequestBody<'startStudy'> = request;
  return requestAPI<Reply<'startStudy', 201>>('studies', {
    method: 'POST',
    body: JSON.stringify(body)
  });
}

/** `GET studies/{id}`: the study as every surface shows it, with its plots. */
export function getStudy(
  id: string,
  signal?: AbortSignal
): Promise<IStudyView> {
  return requestAPI<Reply<'getStudy', 200>>(`studies/${enc(id)}`, { signal });
}

/** `POST studies/{id}/trials`: `add` more trials (a study that was stopped goes on). */
export function addTrials(id: string, add: number): Promise<IStudyView> {
  const body: RequestBody<'addTrials'> = { add };
  return requestAPI<Reply<'addTrials', 200>>(`studies/${enc(id)}/trials`, {
    method: 'POST',
    body: JSON.stringify(body)
  });
}

// ---------------------------------------------------------------------------------------------
// Live updates (the stream itself is read in events.ts)

/** `GET events?after=N&wait=0` (JSON): the polling fallback of the event stream. */
export function pollEvents(
  after: number,
  signal?: AbortSignal
): Promise<IEventBatch> {
  const q: Query<'getEvents'> = { after, wait: 0 };
  return requestAPI<Reply<'getEvents', 200>>(`events${query(q)}`, {
    headers: { Accept: 'application/json' },
    signal
  });
}

/** URL of `GET events?after=N` (the `text/event-stream` form). */
export function eventsUrl(
  after: number,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): string {
  const q: Query<'getEvents'> = { after };
  return URLExt.join(settings.baseUrl, 'kfnb', 'api', 'events') + query(q);
}

// ---------------------------------------------------------------------------------------------
// Handshake

/** `GET /kfnb/api/version`: the server's package version and REST contract version. */
export function getVersion(): Promise<IVersionInfo> {
  return requestAPI<Reply<'getVersion', 200>>('version');
}

/** `GET /kfnb/api/pool`: the server's warm kernel pools. */
export function getPools(): Promise<IKernelPool[]> {
  return requestAPI<Reply<'getPool', 200>>('pool');
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
    // makeRequest reports an aborted fetch as a NetworkError: give it back as the abort it is
    if (init.signal?.aborted || isAbort(error)) {
      throw isAbort(init.signal?.reason)
        ? init.signal?.reason
        : isAbort(error)
          ? error
          : new DOMException('The request was aborted.', 'AbortError');
    }
    throw error instanceof ServerConnection.NetworkError
      ? error
      : new ServerConnection.NetworkError(error as TypeError);
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
