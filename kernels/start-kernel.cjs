// The hyperfeatures Jupyter kernel: tslab's TypeScript kernel, with the SDK's display helpers
// wired to it. kernel.json runs: node start-kernel.cjs <connection_file>, with HYPERFEATURES_TSLAB
// naming the tslab folder found by `hyperfeatures kernel install`.
const { tslabDir, prepareModulePaths } = require('./kernel-env.cjs');

prepareModulePaths();
const tslab = tslabDir();
// `hyperfeatures/notebook` looks here first, so it talks to this very tslab instance
const jupyter = require(`${tslab}/dist/jupyter`);
globalThis.__hyperfeatures_jupyter = jupyter;
// tslab publishes no execute_input message, so front ends and nbconvert record no execution
// counts; publish it (with the count tslab's reply will carry) before each execution
const handleExecute = jupyter.ZmqServer.prototype.handleExecute;
jupyter.ZmqServer.prototype.handleExecute = function (sock, msg) {
  if (!msg.content.silent) {
    this.hfCount = (this.hfCount ?? 0) + 1;
    const input = msg.createReply();
    input.header.msg_type = 'execute_input';
    input.content = { code: msg.content.code, execution_count: this.hfCount };
    input.signAndSend(this.connInfo.key, this.iopub);
  }
  return handleExecute.call(this, sock, msg);
};
require(`${tslab}/dist/main.js`).startKernel({ configPath: process.argv[2], enableFindLocal: false });
