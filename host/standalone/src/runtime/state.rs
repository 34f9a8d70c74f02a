//! Per-call store data: the request evidence, the provider's own config table, and resource limits.
//!
//! Implements exactly the imports the standalone host offers: `gatehouse:provider/evidence`,
//! `wasi:config/store`, `wasi:random/random` and `wasi:clocks/wall-clock`. Nothing else (no
//! filesystem, network, environment or transport fingerprints) is linked.

use std::net::IpAddr;
use std::sync::Arc;

use wasmtime::component::Resource;

use super::bindings::{config_store, evidence, random, types, wall_clock};

/// The request data a provider may read; built once per request and shared by every call.
#[derive(Debug)]
pub struct Evidence {
    /// The trusted client address.
    pub client_ip: Option<IpAddr>,
    /// The request's head (method, URI, headers); borrowed, never copied into a guest unasked.
    pub head: http::request::Parts,
}

/// Store data for one provider call.
pub struct CallState {
    pub(super) evidence: Arc<Evidence>,
    pub(super) settings: Arc<Vec<(String, String)>>,
    pub(super) limits: MemoryLimiter,
}

/// Caps linear memory and table growth; remembers whether the cap was hit so a trap can be reported
/// as a memory-limit failure.
pub struct MemoryLimiter {
    pub(super) max_memory: usize,
    pub(super) max_table_elements: usize,
    pub(super) hit: bool,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.hit = true;
            wasmtime::bail!("memory limit of {} bytes exceeded", self.max_memory);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_table_elements {
            self.hit = true;
            wasmtime::bail!(
                "table limit of {} elements exceeded",
                self.max_table_elements
            );
        }
        Ok(true)
    }
}

impl types::Host for CallState {}

impl evidence::Host for CallState {}

impl evidence::HostRequest for CallState {
    fn client_ip(&mut self, _: Resource<evidence::Request>) -> Option<types::IpAddress> {
        self.evidence.client_ip.map(|ip| match ip {
            IpAddr::V4(v4) => {
                let [a, b, c, d] = v4.octets();
                types::IpAddress::Ipv4((a, b, c, d))
            }
            IpAddr::V6(v6) => {
                let [a, b, c, d, e, f, g, h] = v6.segments();
                types::IpAddress::Ipv6((a, b, c, d, e, f, g, h))
            }
        })
    }

    fn user_agent(&mut self, _: Resource<evidence::Request>) -> Option<String> {
        header_value(&self.evidence.head.headers, "user-agent")
    }

    fn header(&mut self, _: Resource<evidence::Request>, name: String) -> Option<String> {
        header_value(&self.evidence.head.headers, &name)
    }

    fn path(&mut self, _: Resource<evidence::Request>) -> String {
        self.evidence.head.uri.path().to_owned()
    }

    fn query(&mut self, _: Resource<evidence::Request>) -> Option<String> {
        self.evidence.head.uri.query().map(str::to_owned)
    }

    fn drop(&mut self, _: Resource<evidence::Request>) -> wasmtime::Result<()> {
        // The request is owned by the host; guests only ever hold borrows.
        Ok(())
    }
}

/// All values of header `name` joined with `, `; `None` when absent or not valid UTF-8.
fn header_value(headers: &http::HeaderMap, name: &str) -> Option<String> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?.to_str().ok()?;
    let mut out = first.to_owned();
    for v in values {
        out.push_str(", ");
        out.push_str(v.to_str().ok()?);
    }
    Some(out)
}

impl config_store::Host for CallState {
    fn get(&mut self, key: String) -> Result<Option<String>, config_store::Error> {
        Ok(self
            .settings
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone()))
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, config_store::Error> {
        Ok(self.settings.as_ref().clone())
    }
}

impl random::Host for CallState {
    fn get_random_bytes(&mut self, len: u64) -> Vec<u8> {
        // Bounded so a guest cannot make the host allocate without limit.
        let len = usize::try_from(len.min(1 << 16)).unwrap_or(1 << 16);
        let mut out = vec![0; len];
        rand::fill(&mut out[..]);
        out
    }

    fn get_random_u64(&mut self) -> u64 {
        rand::random()
    }
}

impl wall_clock::Host for CallState {
    fn now(&mut self) -> wall_clock::Datetime {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        wall_clock::Datetime {
            seconds: now.as_secs(),
            nanoseconds: now.subsec_nanos(),
        }
    }

    fn resolution(&mut self) -> wall_clock::Datetime {
        wall_clock::Datetime {
            seconds: 0,
            nanoseconds: 1,
        }
    }
}
