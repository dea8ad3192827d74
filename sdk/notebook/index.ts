/** `hyperfeatures/notebook`: display helpers for tslab and Deno's Jupyter kernel, and the kernel installer. */
export { showPng, showImage, showChart, showMarkdown, notebookHost } from './display.ts';
export { installKernel, findTslab, jupyterDataDir, type KernelInstallOptions } from './kernel.ts';
export { exportNotebookHtml, withLiveCharts } from './html.ts';
