// Preloaded by scripts/test.js when RUSTLS_NODE_TEST_PUMP=stream: every
// library server that does not choose takes the net.Server path, and every
// client connects over a net.Socket, so the whole suite runs on the stream
// pump. The choice is made here, explicitly, through the library's internal
// defaults; lib/ reads no environment variable.
import { setDefaultClientPump } from '../../lib/client'
import { setDefaultServerPath } from '../../lib/server'

setDefaultServerPath('net')
setDefaultClientPump('stream')
