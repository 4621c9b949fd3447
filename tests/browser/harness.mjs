// One test file's world: a server, a browser, the people in it, and scenarios whose failures
// carry what the pages and the server said.

import { test, before, after } from 'node:test';
import { startServer } from './server.mjs';
import { launchBrowser, openPerson, joined } from './browser.mjs';
import { launchFirefox, openFirefoxPerson, startXvfb } from './firefox.mjs';
import { createLink } from './netns.mjs';

const SDP_LINE = /"type":"(offer|answer)"/;

// The server's counters that moved (no histogram buckets): what it forwarded, dropped and why,
// which a page's view of its own connection cannot say.
async function serverCounters(server) {
  if (!server) return '';
  try {
    return (await server.metricsText())
      .split('\n')
      .filter((l) => l && !l.startsWith('#') && !/_bucket\{/.test(l) && !/ 0(\.0)?$/.test(l))
      .join('\n');
  } catch (err) {
    return `(no /metrics: ${err.message})`;
  }
}

// serverArgs: extra command-line arguments for confab (e.g. an auth secret); firefox: also a
// Firefox (windows on a virtual display) for people opened with `{ firefox: true }`; netns: the
// server listens on a veth link (`world.link`, see netns.mjs) and people opened with
// `{ netns: true }` are in a second Chromium inside the link's namespace.
export function useWorld({ serverArgs = [], firefox = false, netns = false } = {}) {
  const world = {
    server: null,
    browser: null,
    firefox: null,
    xvfb: null,
    link: null,
    netnsBrowser: null,
    people: new Map(), // label → person

    // Opens a page at `/?query` for `label`; `expect` is the state to wait for (null: none);
    // the other options go to openPerson.
    async open(label, query, { expect = 'joined', firefox = false, netns = false, ...options } = {}) {
      const url = `${world.server.url}/?${query}`;
      const person = firefox
        ? await openFirefoxPerson(world.firefox, url, label)
        : await openPerson(netns ? world.netnsBrowser : world.browser, url, label, options);
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
          err.message += `\n--- page logs ---\n${pageLogs}\n--- server counters ---\n${await serverCounters(world.server)}\n--- server output (tail) ---\n${world.server?.log().slice(-6000)}`;
          throw err;
        }
      });
    },
  };

  before(async () => {
    if (netns) {
      world.link = await createLink();
      world.server = await startServer({ extraArgs: serverArgs, host: world.link.serverIp });
      // Camera and microphone need a secure context, which http:// to a non-loopback IP is not.
      const args = [`--unsafely-treat-insecure-origin-as-secure=${world.server.url}`];
      [world.browser, world.netnsBrowser] = await Promise.all([
        launchBrowser({ args }),
        launchBrowser({ args, executablePath: world.link.chromium }),
      ]);
    } else {
      [world.server, world.browser] = await Promise.all([startServer({ extraArgs: serverArgs }), launchBrowser()]);
    }
    if (firefox) {
      // After the server: Firefox's stored permissions name its origin.
      world.xvfb = await startXvfb();
      world.firefox = await launchFirefox(world.server.url, { display: world.xvfb.display });
    }
  });

  after(async () => {
    await world.firefox?.close();
    world.xvfb?.stop();
    await world.netnsBrowser?.close();
    await world.browser?.close();
    await world.server?.stop();
    await world.link?.destroy();
  });

  return world;
}
