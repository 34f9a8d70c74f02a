//! User-Agent classification: decides bot / mobile / tablet / desktop / unknown from one string.
//!
//! This is a compact, table-driven matcher rather than a UA-parsing crate. The maintained Rust
//! parsers (`woothee`, `isbot`, `uaparser`, `user-agent-parser`, `fast_uaparser`) are all built on
//! `regex`/`fancy-regex` plus `lazy_static`, which require `std`: on `wasm32-wasip2` that makes the
//! component import `wasi:cli/*` and `wasi:io/*`, which the provider worlds do not offer, and the
//! regex engines plus their pattern sets add hundreds of KiB to megabytes to a component that
//! otherwise weighs a few KiB. The lists below follow the same conventions those crates do:
//!
//! - **Bots** are checked first, so a crawler that imitates a phone (Googlebot smartphone) is a bot:
//!   named crawlers and fetchers by substring, HTTP libraries and command-line tools by prefix
//!   (`curl/`, `python-requests/`, …), then the generic tokens `bot` (as a word ending, so the
//!   phone brand `CUBOT` is not a bot), `crawl`, `spider`, `scraper`, `headless` and a `+http`
//!   contact URL, which browsers never send.
//! - **Devices** follow the platform vendors' own rules: Android phones send `Mobile` and Android
//!   tablets do not; iPads send `iPad` (iPadOS Safari's default desktop-class UA is
//!   indistinguishable from a Mac and is reported as desktop); TVs and game consoles are
//!   `unknown`, because the contract has no class for them.
//!
//! It never reports a missing or empty User-Agent as a bot: absent evidence is `unknown`.
//! Matching is ASCII case-insensitive and allocates one lowercase copy of the header.

use alloc::string::{String, ToString};

/// The broad class of a client; mirrors the WIT `device-class`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceClass {
    /// An automated client.
    Bot,
    /// A phone.
    Mobile,
    /// A tablet.
    Tablet,
    /// A desktop or laptop browser.
    Desktop,
    /// Not enough evidence to say.
    Unknown,
}

/// The classification of one User-Agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The device class.
    pub class: DeviceClass,
    /// For bots, the crawler's or tool's name when it can be told.
    pub bot_name: Option<String>,
}

/// Named crawlers, preview fetchers, monitors and automation tools, matched as lowercase
/// substrings: `(token, name reported)`. Checked in order; more specific tokens come first.
const NAMED_BOTS: &[(&str, &str)] = &[
    ("googlebot", "Googlebot"),
    ("adsbot-google", "AdsBot-Google"),
    ("mediapartners-google", "Mediapartners-Google"),
    ("apis-google", "APIs-Google"),
    ("feedfetcher-google", "FeedFetcher-Google"),
    ("google-inspectiontool", "Google-InspectionTool"),
    ("googleother", "GoogleOther"),
    ("storebot-google", "Storebot-Google"),
    ("google-read-aloud", "Google-Read-Aloud"),
    ("duplexweb-google", "DuplexWeb-Google"),
    ("chrome-lighthouse", "Chrome-Lighthouse"),
    ("bingbot", "bingbot"),
    ("bingpreview", "BingPreview"),
    ("adidxbot", "adidxbot"),
    ("msnbot", "msnbot"),
    ("slurp", "Yahoo! Slurp"),
    ("duckduckbot", "DuckDuckBot"),
    ("baiduspider", "Baiduspider"),
    ("yandexbot", "YandexBot"),
    ("yandex.com/bots", "Yandex"),
    ("sogou web spider", "Sogou web spider"),
    ("applebot", "Applebot"),
    ("petalbot", "PetalBot"),
    ("seznambot", "SeznamBot"),
    ("facebookexternalhit", "facebookexternalhit"),
    ("facebookcatalog", "facebookcatalog"),
    ("meta-externalagent", "meta-externalagent"),
    ("meta-externalfetcher", "meta-externalfetcher"),
    ("twitterbot", "Twitterbot"),
    ("linkedinbot", "LinkedInBot"),
    ("pinterestbot", "Pinterestbot"),
    ("slackbot", "Slackbot"),
    ("slack-imgproxy", "Slack-ImgProxy"),
    ("discordbot", "Discordbot"),
    ("telegrambot", "TelegramBot"),
    ("skypeuripreview", "SkypeUriPreview"),
    ("vkshare", "vkShare"),
    ("embedly", "Embedly"),
    ("gptbot", "GPTBot"),
    ("chatgpt-user", "ChatGPT-User"),
    ("oai-searchbot", "OAI-SearchBot"),
    ("claudebot", "ClaudeBot"),
    ("claude-web", "Claude-Web"),
    ("anthropic-ai", "anthropic-ai"),
    ("perplexitybot", "PerplexityBot"),
    ("perplexity-user", "Perplexity-User"),
    ("ccbot", "CCBot"),
    ("bytespider", "Bytespider"),
    ("amazonbot", "Amazonbot"),
    ("ahrefsbot", "AhrefsBot"),
    ("semrushbot", "SemrushBot"),
    ("mj12bot", "MJ12bot"),
    ("dotbot", "DotBot"),
    ("ia_archiver", "ia_archiver"),
    ("archive.org_bot", "archive.org_bot"),
    ("uptimerobot", "UptimeRobot"),
    ("pingdom", "Pingdom"),
    ("statuscake", "StatusCake"),
    ("site24x7", "Site24x7"),
    ("datadogsynthetics", "DatadogSynthetics"),
    ("gtmetrix", "GTmetrix"),
    ("ptst/", "WebPageTest"),
    ("headlesschrome", "HeadlessChrome"),
    ("phantomjs", "PhantomJS"),
    ("slimerjs", "SlimerJS"),
    ("windowspowershell/", "PowerShell"),
    ("aiohttp/", "aiohttp"),
    ("scrapy/", "Scrapy"),
];

/// HTTP libraries and command-line tools, matched as a lowercase prefix of the whole header
/// (their default User-Agent starts with the product token): `(prefix, name reported)`.
///
/// Mobile-app HTTP stacks (`okhttp`, `CFNetwork`, `Dart`) are deliberately absent: their traffic
/// comes from people using an app, not from automation.
const CLIENT_LIBRARIES: &[(&str, &str)] = &[
    ("curl/", "curl"),
    ("python-requests/", "python-requests"),
    ("python-urllib/", "Python-urllib"),
    ("python-httpx/", "python-httpx"),
    ("python/", "Python"),
    ("go-http-client/", "Go-http-client"),
    ("java/", "Java"),
    ("apache-httpclient/", "Apache-HttpClient"),
    ("node-fetch", "node-fetch"),
    ("undici", "undici"),
    ("axios/", "axios"),
    ("libwww-perl/", "libwww-perl"),
    ("guzzlehttp/", "GuzzleHttp"),
    ("ruby", "Ruby"),
    ("faraday v", "Faraday"),
    ("httpie/", "HTTPie"),
    ("postmanruntime/", "PostmanRuntime"),
    ("insomnia/", "Insomnia"),
    ("wget", "Wget"),
];

/// Generic automation words, matched as lowercase substrings. The reported name is the product
/// token around the match (e.g. `ExampleCrawler` in `ExampleCrawler/1.0`).
const GENERIC_BOT_WORDS: &[&str] = &["crawl", "spider", "scraper", "headless"];

/// TVs, streaming sticks and consoles: not desktops, phones or tablets, so `unknown`.
const TV_OR_CONSOLE: &[&str] = &[
    "smart-tv",
    "smarttv",
    "googletv",
    "android tv",
    "crkey",
    "web0s",
    "hbbtv",
    "appletv",
    "roku",
    "playstation",
    "xbox",
    "nintendo",
];

/// Tablet tokens that win over phone tokens (Kindle Fire's Silk sends `Mobile` too).
const TABLET: &[&str] = &["ipad", "silk/", "kindle", "playbook"];

/// Phone tokens; Android is handled separately (phones send `Mobile`, tablets do not).
const MOBILE: &[&str] = &[
    "iphone",
    "ipod",
    "mobi",
    "windows phone",
    "blackberry",
    "bb10",
    "opera mini",
    "kaios",
];

/// Desktop operating-system tokens, checked after every phone and tablet token.
const DESKTOP: &[&str] = &[
    "windows nt",
    "macintosh",
    "mac os x",
    "x11",
    "linux",
    "cros",
    "freebsd",
    "openbsd",
];

/// The longest bot name this module reports; longer product tokens are not names.
const MAX_BOT_NAME: usize = 64;

/// Classifies a `User-Agent` header value; `None` when the request carried none.
pub fn classify_user_agent(user_agent: Option<&str>) -> Verdict {
    let ua = user_agent.map(str::trim).unwrap_or_default();
    if ua.is_empty() || ua == "-" {
        return Verdict {
            class: DeviceClass::Unknown,
            bot_name: None,
        };
    }
    // `to_ascii_lowercase` keeps every byte offset, so a match in `lower` indexes `ua` too.
    let lower = ua.to_ascii_lowercase();
    if let Some(bot_name) = detect_bot(ua, &lower) {
        return Verdict {
            class: DeviceClass::Bot,
            bot_name,
        };
    }
    Verdict {
        class: device_class(&lower),
        bot_name: None,
    }
}

/// `Some(name)` when `ua` is an automated client; the inner name is `None` when the UA matched a
/// generic signal without a usable product token.
fn detect_bot(ua: &str, lower: &str) -> Option<Option<String>> {
    if let Some((_, name)) = NAMED_BOTS.iter().find(|(token, _)| lower.contains(token)) {
        return Some(Some((*name).to_string()));
    }
    if let Some((_, name)) = CLIENT_LIBRARIES
        .iter()
        .find(|(prefix, _)| lower.starts_with(prefix))
    {
        return Some(Some((*name).to_string()));
    }
    if let Some(at) = bot_word(lower) {
        return Some(product_token_at(ua, at));
    }
    for word in GENERIC_BOT_WORDS {
        if let Some(at) = lower.find(word) {
            return Some(product_token_at(ua, at));
        }
    }
    if lower.contains("+http") {
        return Some(None);
    }
    None
}

/// The offset of a `bot` that ends a word (`FooBot/1.0`, `Foobot;`, `foo-bot`), skipping the
/// phone brand `CUBOT` and words that merely contain the letters (`Abbott`).
fn bot_word(lower: &str) -> Option<usize> {
    let bytes = lower.as_bytes();
    lower.match_indices("bot").map(|(at, _)| at).find(|&at| {
        let is_cubot = at >= 2 && &bytes[at - 2..at] == b"cu";
        let ends_word = matches!(
            bytes.get(at + 3),
            None | Some(b'/' | b')' | b';' | b'-' | b',' | b'+' | b':')
        );
        ends_word && !is_cubot
    })
}

/// The product token (`[A-Za-z0-9._!-]+`) of `ua` that contains byte `at`, if it is a plausible
/// name.
fn product_token_at(ua: &str, at: usize) -> Option<String> {
    let is_token = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'!' | b'-');
    let bytes = ua.as_bytes();
    let start = bytes[..at]
        .iter()
        .rposition(|b| !is_token(b))
        .map_or(0, |i| i + 1);
    let end = bytes[at..]
        .iter()
        .position(|b| !is_token(b))
        .map_or(bytes.len(), |i| at + i);
    // Token bytes are ASCII, so `start` and `end` fall on character boundaries.
    let token = ua.get(start..end)?;
    (!token.is_empty() && token.len() <= MAX_BOT_NAME).then(|| token.to_string())
}

/// The class of a client already known not to be a bot.
fn device_class(lower: &str) -> DeviceClass {
    let has = |tokens: &[&str]| tokens.iter().any(|t| lower.contains(t));
    if has(TV_OR_CONSOLE) {
        DeviceClass::Unknown
    } else if has(TABLET) || (lower.contains("tablet") && !lower.contains("tablet pc")) {
        DeviceClass::Tablet
    } else if lower.contains("android") {
        if lower.contains("mobile") {
            DeviceClass::Mobile
        } else {
            DeviceClass::Tablet
        }
    } else if has(MOBILE) {
        DeviceClass::Mobile
    } else if has(DESKTOP) {
        DeviceClass::Desktop
    } else {
        DeviceClass::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real User-Agent strings and what a person reading them would call the client.
    const CASES: &[(&str, DeviceClass, Option<&str>)] = &[
        // Browsers.
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            DeviceClass::Desktop,
            None,
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
            DeviceClass::Desktop,
            None,
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
            DeviceClass::Desktop,
            None,
        ),
        (
            "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            DeviceClass::Desktop,
            None,
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            DeviceClass::Mobile,
            None,
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            DeviceClass::Tablet,
            None,
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
            DeviceClass::Mobile,
            None,
        ),
        (
            "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            DeviceClass::Tablet,
            None,
        ),
        (
            "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0",
            DeviceClass::Mobile,
            None,
        ),
        (
            "Mozilla/5.0 (Android 14; Tablet; rv:125.0) Gecko/125.0 Firefox/125.0",
            DeviceClass::Tablet,
            None,
        ),
        (
            "Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A.230901.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36",
            DeviceClass::Mobile,
            None,
        ),
        (
            "Mozilla/5.0 (Linux; Android 11; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/124.2.1 like Chrome/124.0.0.0 Mobile Safari/537.36",
            DeviceClass::Tablet,
            None,
        ),
        (
            "Mozilla/5.0 (Linux; Android 10; CUBOT_X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
            DeviceClass::Mobile,
            None,
        ),
        (
            "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/4.0 Chrome/76.0.3809.146 TV Safari/537.36",
            DeviceClass::Unknown,
            None,
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edge/44.18363.8131",
            DeviceClass::Unknown,
            None,
        ),
        // Crawlers, including ones that imitate a phone.
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            DeviceClass::Bot,
            Some("Googlebot"),
        ),
        (
            "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.201 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            DeviceClass::Bot,
            Some("Googlebot"),
        ),
        (
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
            DeviceClass::Bot,
            Some("bingbot"),
        ),
        (
            "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
            DeviceClass::Bot,
            Some("YandexBot"),
        ),
        (
            "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
            DeviceClass::Bot,
            Some("Baiduspider"),
        ),
        (
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            DeviceClass::Bot,
            Some("facebookexternalhit"),
        ),
        (
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            DeviceClass::Bot,
            Some("Slackbot"),
        ),
        (
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
            DeviceClass::Bot,
            Some("GPTBot"),
        ),
        // Tools and libraries.
        ("curl/8.5.0", DeviceClass::Bot, Some("curl")),
        ("Wget/1.21.4", DeviceClass::Bot, Some("Wget")),
        (
            "python-requests/2.31.0",
            DeviceClass::Bot,
            Some("python-requests"),
        ),
        (
            "Go-http-client/2.0",
            DeviceClass::Bot,
            Some("Go-http-client"),
        ),
        ("Java/17.0.2", DeviceClass::Bot, Some("Java")),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36",
            DeviceClass::Bot,
            Some("HeadlessChrome"),
        ),
        // Generic tokens: the name is the product token around the word.
        (
            "Mozilla/5.0 (compatible; ExampleBot/1.0)",
            DeviceClass::Bot,
            Some("ExampleBot"),
        ),
        ("AcmeCrawler/3.1", DeviceClass::Bot, Some("AcmeCrawler")),
        (
            "Mozilla/5.0 (compatible; acme-spider)",
            DeviceClass::Bot,
            Some("acme-spider"),
        ),
        (
            "Mozilla/5.0 (compatible; +http://example.com/about)",
            DeviceClass::Bot,
            None,
        ),
        // No evidence.
        ("Mozilla/5.0", DeviceClass::Unknown, None),
        (
            "SomeApp/1.0 CFNetwork/1490.0.4 Darwin/23.2.0",
            DeviceClass::Unknown,
            None,
        ),
        ("okhttp/4.12.0", DeviceClass::Unknown, None),
    ];

    #[test]
    fn real_user_agents_are_classified_as_a_person_would() {
        for (ua, class, bot_name) in CASES {
            let verdict = classify_user_agent(Some(ua));
            assert_eq!(verdict.class, *class, "class of {ua:?}");
            assert_eq!(verdict.bot_name.as_deref(), *bot_name, "bot name of {ua:?}");
        }
    }

    #[test]
    fn missing_or_empty_user_agent_is_unknown_not_bot() {
        let unknown = Verdict {
            class: DeviceClass::Unknown,
            bot_name: None,
        };
        assert_eq!(classify_user_agent(None), unknown);
        assert_eq!(classify_user_agent(Some("")), unknown);
        assert_eq!(classify_user_agent(Some("   ")), unknown);
        assert_eq!(classify_user_agent(Some("-")), unknown);
    }

    #[test]
    fn matching_ignores_case() {
        let verdict = classify_user_agent(Some("MOZILLA/5.0 (COMPATIBLE; GOOGLEBOT/2.1)"));
        assert_eq!(verdict.class, DeviceClass::Bot);
        assert_eq!(verdict.bot_name.as_deref(), Some("Googlebot"));
        assert_eq!(
            classify_user_agent(Some("CURL/8.0")).class,
            DeviceClass::Bot
        );
    }

    #[test]
    fn bot_inside_a_word_is_not_a_bot() {
        for ua in [
            "Mozilla/5.0 (Windows NT 10.0) Abbott/1.0",
            "Mozilla/5.0 (Linux; Android 12; CUBOT KINGKONG 7) Mobile",
        ] {
            assert_ne!(
                classify_user_agent(Some(ua)).class,
                DeviceClass::Bot,
                "{ua:?}"
            );
        }
    }

    #[test]
    fn overlong_product_token_is_not_reported_as_a_name() {
        let ua = alloc::format!("{}bot/1.0", "a".repeat(100));
        let verdict = classify_user_agent(Some(&ua));
        assert_eq!(verdict.class, DeviceClass::Bot);
        assert_eq!(verdict.bot_name, None);
    }

    #[test]
    fn non_ascii_user_agent_does_not_panic() {
        // Token boundaries stop at non-ASCII bytes, so slicing never splits a character.
        let verdict = classify_user_agent(Some("ÄÖÜspider/1.0 ünïcode"));
        assert_eq!(verdict.class, DeviceClass::Bot);
        assert_eq!(verdict.bot_name.as_deref(), Some("spider"));
        assert_eq!(
            classify_user_agent(Some("Ünïcode/1.0 ÄÖÜ")).class,
            DeviceClass::Unknown
        );
    }
}
