/** `hyperfeatures/notebook`: display helpers for the tslab kernel, and the kernel installer. */
export { showPng, showImage, showChart, showMarkdown } from './display.ts';
export { installKernel, findTslab, jupyterDataDir, type KernelInstallOptions } from './kernel.ts';
export { exportNotebookHtml, withLiveCharts } from './html.ts';
