// `require('hyperfeatures')` in notebooks: the SDK's TypeScript sources, loaded through tsx's
// require hook (the kernel starts node with --require tsx/cjs).
module.exports = require('../../../sdk/index.ts');
