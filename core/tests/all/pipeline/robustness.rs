//! Hostile and random input: the pipeline never panics, and what it writes is always a valid
//! header value. Deterministic (xorshift), so a failure reproduces.

use gatehouse_core::pipeline::{
    EcOutput, EditableHeaders, ProviderHeaderLimits, ResponseEdits, private_cache_control,
    remove_cookie,
};

use super::support::{Mock, View, pipeline, run};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Bytes biased towards the ones that matter to cookie and directive parsing.
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        const INTERESTING: &[u8] = b";=,\" \t\\ts-ec=public,s-maxage=1private\x00\r\n\xff";
        let len = self.below(max + 1);
        (0..len)
            .map(|_| {
                if self.below(3) == 0 {
                    (self.next() & 0xff) as u8
                } else {
                    INTERESTING[self.below(INTERESTING.len())]
                }
            })
            .collect()
    }

    fn text(&mut self, max: usize) -> String {
        String::from_utf8_lossy(&self.bytes(max)).into_owned()
    }
}

fn is_field_value(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
}

#[test]
fn cache_control_rewrites_are_always_valid_and_always_private() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..5_000 {
        let lines: Vec<Vec<u8>> = (0..rng.below(3)).map(|_| rng.bytes(40)).collect();
        let out = private_cache_control(&lines);
        assert!(is_field_value(out.as_bytes()), "{out:?} from {lines:?}");
        assert!(out.ends_with("private"), "{out:?}");
        let lower = out.to_ascii_lowercase();
        assert!(
            !lower
                .split(',')
                .any(|d| matches!(d.trim(), "public") || d.trim().starts_with("s-maxage")),
            "{out:?} from {lines:?}"
        );
    }
}

#[test]
fn removing_the_edge_cookie_never_leaves_it_and_never_invents_bytes() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..5_000 {
        let line = rng.bytes(60);
        if let Some(out) = remove_cookie(&line, "ts-ec") {
            assert_eq!(remove_cookie(&out, "ts-ec"), None, "{line:?} -> {out:?}");
            // Every byte of the output comes from the input or the `; ` separator.
            assert!(
                out.iter()
                    .all(|b| line.contains(b) || *b == b' ' || *b == b';')
            );
            assert!(out.len() <= line.len() + 1);
        }
    }
}

#[test]
fn random_requests_and_provider_answers_never_break_the_edits() {
    let pipeline = pipeline("US");
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for _ in 0..1_000 {
        let mut view = View::page()
            .header("cookie", &rng.text(80))
            .header("sec-gpc", if rng.below(2) == 0 { "1" } else { "0" })
            .header("x-geo-country", &rng.text(4));
        if rng.below(4) == 0 {
            view = view.header("cookie", &format!("ts-ec={}", rng.text(20)));
        }
        let country = ["US", "DE", "us/ca", "", "ZZ", "USA"][rng.below(6)].to_owned();
        let id = rng.text(12);
        let headers = vec![
            (rng.text(8), rng.text(16)),
            ("x-ec-id".into(), rng.text(16)),
        ];
        let mut providers = Mock::standard(Some(&country), None).with_ec(move |_| {
            Ok(EcOutput {
                id: Some(id.clone()),
                headers: headers.clone(),
            })
        });
        let pipeline_with_headers =
            super::support::pipeline_with(gatehouse_core::pipeline::PipelineSettings {
                edge_cookie: gatehouse_core::pipeline::EdgeCookieSettings {
                    allowed_headers: vec!["x-ec-id".into()],
                    header_limits: ProviderHeaderLimits::default(),
                    ..Default::default()
                },
                ..gatehouse_core::pipeline::PipelineSettings::new("US")
            });
        let outcome = run(&pipeline_with_headers, &view, &mut providers);

        let mut forwarded = view.forwarded_headers();
        pipeline.edit_forwarded_request(&outcome.forward, &mut forwarded);
        for value in forwarded.values("gatehouse-decision") {
            assert!(is_field_value(value), "{value:?}");
        }
        let mut response: Vec<(String, Vec<u8>)> = vec![("cache-control".into(), rng.bytes(20))];
        pipeline.edit_response(&outcome.response, &mut response);
        let ResponseEdits {
            set_cookie,
            headers,
        } = &outcome.response;
        if let Some(cookie) = set_cookie {
            assert!(is_field_value(cookie.as_bytes()), "{cookie:?}");
            assert!(cookie.starts_with("ts-ec=") && cookie.matches(';').count() == 5);
        }
        for (name, value) in headers {
            assert_eq!(name, "x-ec-id");
            assert!(is_field_value(value.as_bytes()), "{value:?}");
        }
        if outcome.response.is_private() {
            let cc = response.values("cache-control");
            assert_eq!(cc.len(), 1);
            assert!(is_field_value(cc[0]));
        }
    }
}
