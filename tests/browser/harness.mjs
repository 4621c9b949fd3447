// One test file's world: a server, a browser, the people in it, and scenarios whose failures
// carry what the pages and the server said.

import { test, before, after } from 'node:test';
import { startServer } from './server.mjs';
import { launchBrowser, openPerson, joined } from './browser.mjs';

const SDP_LINE = /"type":"(offer|answer)"/;

// serverArgs: extra command-line arguments for confab (e.g. an auth secret).
export function useWorld({ serverArgs = [] } = {}) {
  const world = {
    server: null,
    browser: null,
    people: new Map(), // label → person

    // Opens a page at `/?query` for `label`; `expect` is the state to wait for (null: none);
    // the other options go to openPerson.
    async open(label, query, { expect = 'joined', ...options } = {}) {
      const person = await openPerson(world.browser, `${world.server.url}/?${query}`, label, options);
      world.people.set(label, person);
      if (expect === 'joined') await joined(person);
      return person;
    },

    async close(label) {
      await world.people.get(label)?.context.close();
      world.people.delete(label);
    },

    scenario(name, body, options = {}) {
      test(name, options, async () => {
        try {
          await body();
        } catch (err) {
          // SDP is long and rarely the story: leave it out so the messages around it fit.
          const pageLogs = [...world.people.values()]
            .flatMap((p) => p.logs.filter((l) => !SDP_LINE.test(l)).slice(-40))
            .join('\n');
          err.message += `\n--- page logs ---\n${pageLogs}\n--- server output (tail) ---\n${world.server?.log().slice(-6000)}`;
          throw err;
        }
      });
    },
  };

  before(async () => {
    [world.server, world.browser] = await Promise.all([startServer({ extraArgs: serverArgs }), launchBrowser()]);
  });

  after(async () => {
    await world.browser?.close();
    await world.server?.stop();
  });

  return world;
}
