/**
 * How a run or step status looks: an icon (JupyterLab's own icons, coloured by status through
 * `kfnb-Status--STATUS` classes) and a word.
 */
import {
  checkIcon,
  circleEmptyIcon,
  closeIcon,
  LabIcon,
  refreshIcon,
  stopIcon
} from '@jupyterlab/ui-components';

import { h } from './dom';

const ICONS: Record<string, LabIcon> = {
  PENDING: circleEmptyIcon,
  SUCCEEDED: checkIcon,
  FAILED: closeIcon,
  CANCELING: stopIcon,
  CANCELED: stopIcon,
  PRUNED: stopIcon,
  SKIPPED: circleEmptyIcon,
  CACHED: refreshIcon
};

const WORDS: Record<string, string> = {
  PENDING: 'pending',
  RUNNING: 'running',
  SUCCEEDED: 'succeeded',
  FAILED: 'failed',
  CANCELING: 'canceling',
  CANCELED: 'canceled',
  PRUNED: 'pruned',
  SKIPPED: 'skipped',
  CACHED: 'cached'
};

/** `succeeded`, `running`... */
export function statusWord(status: string): string {
  return WORDS[status] ?? status.toLowerCase();
}

/** A small status icon; RUNNING is a spinner. */
export function statusIcon(status: string): HTMLElement {
  const holder = h('span', {
    class: `kfnb-StatusIcon kfnb-Status--${status}`,
    title: statusWord(status),
    'aria-label': statusWord(status)
  });
  const icon = ICONS[status];
  if (icon) {
    icon.element({ container: holder, height: '14px', width: '14px' });
  } else {
    holder.append(h('span', { class: 'kfnb-Spinner' }));
  }
  return holder;
}
