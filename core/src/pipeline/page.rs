//! Which requests are page loads. Only those run the pipeline (and may get an Edge Cookie):
//! sub-resources and static assets are forwarded without a decision.

use crate::provider::RequestView;

/// Path extensions of static assets, compared case-insensitively.
pub const STATIC_ASSET_EXTENSIONS: &[&str] = &[
    "js", "mjs", "css", "map", "png", "jpg", "jpeg", "gif", "webp", "avif", "svg", "ico", "woff",
    "woff2", "ttf", "otf", "mp4", "webm", "json", "txt", "xml", "wasm",
];

/// Whether `request` is a page load: `GET` or `HEAD`; a `Sec-Fetch-Dest` (when sent) of
/// `document`, `iframe` or `frame`; and a path whose last segment does not end in a
/// [`STATIC_ASSET_EXTENSIONS`] extension.
#[must_use]
pub fn is_page_request(request: &dyn RequestView) -> bool {
    if !matches!(request.method(), "GET" | "HEAD") {
        return false;
    }
    if let Some(dest) = request.header_values("sec-fetch-dest").first()
        && !matches!(*dest, "document" | "iframe" | "frame")
    {
        return false;
    }
    let last = request.path().rsplit('/').next().unwrap_or("");
    match last.rsplit_once('.') {
        None => true,
        Some((_, ext)) => !STATIC_ASSET_EXTENSIONS
            .iter()
            .any(|asset| ext.eq_ignore_ascii_case(asset)),
    }
}
