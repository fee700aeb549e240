import { LabIcon } from '@jupyterlab/ui-components';

/** A notebook page whose cells fan out into a small pipeline graph. */
const kfnbSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M4 2h11l5 5v15H4V2zm2 2v16h12V8h-4V4H6z"/>
    <circle cx="9" cy="9" r="1.8"/>
    <circle cx="9" cy="16" r="1.8"/>
    <circle cx="15" cy="12.5" r="1.8"/>
    <path d="M9 10.5v4h1.2v-4zM10.3 9.6l3.6 2.2-.6 1-3.6-2.2zM10.3 15.4l3.6-2.2-.6-1-3.6 2.2z"/>
  </g>
</svg>`;

export const kfnbIcon = new LabIcon({ name: 'kfnb:logo', svgstr: kfnbSvg });
