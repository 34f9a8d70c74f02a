// Example device provider in JavaScript, built with jco + componentize-js.
//
// Classifies a request from its User-Agent and the User-Agent Client Hints the browser sent. It
// declares the reads it uses (user-agent and three `sec-ch-ua-*` headers), so the host fills
// nothing else. Because `sec-ch-ua-model` and `sec-ch-ua-platform` are high-entropy device
// characteristics, it requires `scan-device-characteristics`: Gatehouse never runs it where that
// permission is not held (e.g. California, or after an opt-out), and then classifies the
// request as `unknown`.
//
// Settings (from `[device.providers.NAME]` in the publisher's config):
//   extra_bots   optional. Comma-separated User-Agent substrings (case-insensitive) that the
//                publisher knows are automated, e.g. its own uptime monitor: `acme-monitor,pingdom`.

const ID = 'example-device-js';
const VERSION = '0.1.0';
const MAX_EXTRA_BOTS = 100;

// Known crawlers first (their names are logged), then generic automation markers.
const NAMED_BOTS = [
  ['googlebot', 'Googlebot'],
  ['bingbot', 'Bingbot'],
  ['applebot', 'Applebot'],
  ['duckduckbot', 'DuckDuckBot'],
  ['yandexbot', 'YandexBot'],
  ['baiduspider', 'Baiduspider'],
  ['facebookexternalhit', 'Facebook'],
  ['gptbot', 'GPTBot'],
  ['ccbot', 'CCBot'],
  ['headlesschrome', 'HeadlessChrome'],
];
const GENERIC_BOT = /\b(bot|crawler|spider|scraper|curl|wget|python-requests|httpclient|go-http-client|java\/)/i;
const TABLET = /\b(ipad|tablet|kindle|silk|playbook)\b|android(?!.*\bmobile\b)/i;
const MOBILE = /\b(mobile|iphone|ipod|windows phone|blackberry|opera mini)\b/i;
const DESKTOP = /\b(windows nt|macintosh|x11|cros)\b/i;

function parseSettings(settings) {
  const extraBots = [];
  for (const { key, value } of settings) {
    if (key === 'extra_bots') {
      for (const item of value.split(',')) {
        const needle = item.trim().toLowerCase();
        if (needle) extraBots.push(needle);
      }
      if (extraBots.length > MAX_EXTRA_BOTS) {
        throw new Error(`\`extra_bots\`: at most ${MAX_EXTRA_BOTS} entries`);
      }
    } else {
      throw new Error(`\`${key}\`: unknown setting`);
    }
  }
  return { extraBots };
}

function header(evidence, name) {
  const found = evidence.headers.find((h) => h.name === name);
  return found === undefined ? undefined : found.value;
}

/** The classification of one request: `{ class, botName }`. */
export function classifyRequest(config, userAgent, hints) {
  if (userAgent === undefined || userAgent.trim() === '') {
    // No User-Agent is not evidence of a bot: bots are refused an Edge Cookie.
    return { class: 'unknown', botName: undefined };
  }
  const ua = userAgent.toLowerCase();
  for (const [needle, name] of NAMED_BOTS) {
    if (ua.includes(needle)) return { class: 'bot', botName: name };
  }
  for (const needle of config.extraBots) {
    if (ua.includes(needle)) return { class: 'bot', botName: needle };
  }
  if (GENERIC_BOT.test(userAgent)) return { class: 'bot', botName: undefined };
  // A Client Hint is the browser's own statement; it wins over User-Agent heuristics.
  if (hints.mobile === '?1') return { class: 'mobile', botName: undefined };
  if (hints.mobile === '?0' && /android/i.test(hints.platform ?? '')) {
    return { class: 'tablet', botName: undefined };
  }
  if (TABLET.test(userAgent)) return { class: 'tablet', botName: undefined };
  if (MOBILE.test(userAgent)) return { class: 'mobile', botName: undefined };
  if (DESKTOP.test(userAgent) || hints.mobile === '?0') {
    return { class: 'desktop', botName: undefined };
  }
  return { class: 'unknown', botName: undefined };
}

export const device = {
  describe(settings) {
    try {
      parseSettings(settings);
    } catch (e) {
      // `result<manifest, string>`: the thrown value is the error.
      throw e.message;
    }
    return {
      id: ID,
      version: VERSION,
      requiredPermissions: ['scan-device-characteristics'],
      reads: [
        { tag: 'user-agent' },
        { tag: 'header', val: 'sec-ch-ua-mobile' },
        { tag: 'header', val: 'sec-ch-ua-platform' },
        { tag: 'header', val: 'sec-ch-ua-model' },
      ],
      callBudgetMs: undefined,
    };
  },

  classify(settings, evidence) {
    let config;
    try {
      config = parseSettings(settings);
    } catch (e) {
      throw { tag: 'config', val: e.message };
    }
    const hints = {
      mobile: header(evidence, 'sec-ch-ua-mobile'),
      platform: header(evidence, 'sec-ch-ua-platform'),
      model: header(evidence, 'sec-ch-ua-model'),
    };
    return classifyRequest(config, evidence.userAgent, hints);
  },
};
