#!/usr/bin/env node
'use strict'
// Thin entry: the CLI lives in lib/terminator/cli.ts (compiled to dist/).
let cli
try {
  cli = require('../dist/lib/terminator/cli.js')
} catch (err) {
  if (err && err.code === 'MODULE_NOT_FOUND' && String(err.message).includes('dist/lib/terminator/cli.js')) {
    process.stderr.write('rustls-node: dist/ is missing; build it with `npm run build:ts`\n')
    process.exit(1)
  }
  throw err
}
cli.run()
