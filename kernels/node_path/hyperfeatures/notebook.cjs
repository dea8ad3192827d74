// `require('hyperfeatures/notebook')`: display helpers for the tslab kernel.
module.exports = require('../../display.ts');
