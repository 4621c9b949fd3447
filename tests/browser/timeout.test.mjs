// A session the server ends for silence (`timed_out`) ends on its own screen, with Rejoin:
// not on "The meeting has ended" (`closed`), which nothing can undo.

import assert from 'node:assert/strict';
import { useWorld } from './harness.mjs';
import { waitFor } from './browser.mjs';

// No ICE-TCP, and the page drops the answer's UDP candidates: its media can never connect,
// so the server reaps it once the connect timeout (5 s from the answer) passes.
const world = useWorld({ serverArgs: ['--connect-timeout', '5', '--ice-tcp', 'false', '--ice-tcp-http', 'false'] });

world.scenario('a page whose media never connects is told it was disconnected, and may rejoin', async () => {
  const ned = await world.open('Ned', `room=timeout-${process.pid}&name=Ned`, { udp: false, expect: null });
  const end = await waitFor(
    "Ned's end screen",
    () =>
      ned.page.evaluate(() => {
        const view = document.querySelector('#end-view:not([hidden])');
        if (!view) return null;
        const actions = [...view.querySelectorAll('.actions button')].map((b) => b.textContent);
        return { code: view.dataset.code, title: view.querySelector('h1').textContent, actions };
      }),
    (e) => e !== null,
    { timeoutMs: 30_000, intervalMs: 250 },
  );
  assert.deepEqual(end, { code: 'timed_out', title: 'You were disconnected', actions: ['Rejoin', 'Back to start'] });
});
