/**
 * The body of a training job's detail (`kind` train): what the job asked for (processes, nodes,
 * GPUs, the values it carried), then one row per rank (local) or node (cluster) with its state,
 * GPUs, duration and error, and the selected one's streaming log: the pipeline view's rows and
 * log without a DAG or executed notebooks.
 */
import { IRun } from './api';
import { h } from './dom';
import { PipelineRunView } from './pipelinerun';

/** What a `train` run's spec says of it (`spec.train`, stored at submit). */
export interface ITrainSpec {
  procs_per_node?: number;
  gpus_per_node?: number;
  nodes?: number;
  entry?: string;
  values?: string[];
  image?: string | null;
}

export function trainSpec(run: IRun): ITrainSpec {
  const train = (run.spec ?? {})['train'];
  return train && typeof train === 'object' ? (train as ITrainSpec) : {};
}

/** `2 processes × 1 node · 2 GPUs per node · values X, config · local`. */
export function trainSummary(run: IRun): string {
  const spec = trainSpec(run);
  const procs = spec.procs_per_node ?? run.steps.length;
  const nodes = spec.nodes ?? 1;
  const gpus = spec.gpus_per_node ?? 0;
  const parts = [
    `${procs} process${procs === 1 ? '' : 'es'} × ${nodes} node${nodes === 1 ? '' : 's'}`,
    gpus ? `${gpus} GPU${gpus === 1 ? '' : 's'} per node` : 'no GPUs',
    spec.values?.length ? `notebook values ${spec.values.join(', ')}` : '',
    spec.image ? `image ${spec.image}` : '',
    run.backend
  ];
  return parts.filter(Boolean).join(' · ');
}

export class TrainRunView extends PipelineRunView {
  protected readonly showsNotebooks = false;

  protected head(run: IRun): HTMLElement {
    return h('p', { class: 'kfnb-TrainRun-summary' }, trainSummary(run));
  }
}
