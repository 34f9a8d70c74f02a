//! Test guest: an Edge Cookie provider that reads its id from a file (`/etc/gatehouse-id`), as a
//! vendor might. Its component therefore imports `wasi:filesystem/{types,preopens}`: the
//! standalone host links them with no preopened directory, and `gatehouse compose --target
//! wasi-http` refuses the provider, listing those imports (a composed provider would share the
//! platform's filesystem with the host).

use gatehouse_provider::edge_cookie::{EcError, EcOutput, EdgeCookieProvider};
use gatehouse_provider::{Evidence, Manifest, Settings};

/// The provider.
pub struct FileProvider;

impl EdgeCookieProvider for FileProvider {
    fn describe(_settings: &Settings) -> Result<Manifest, String> {
        Ok(Manifest {
            id: "filesystem".into(),
            version: "0.1.0".into(),
            required_permissions: vec!["store-on-device".into()],
            reads: Vec::new(),
            call_budget_ms: None,
        })
    }

    fn generate(
        _settings: &Settings,
        _evidence: Evidence,
        _current: Option<String>,
    ) -> Result<EcOutput, EcError> {
        let id = std::fs::read_to_string("/etc/gatehouse-id")
            .map_err(|e| EcError::Internal(format!("cannot read the id file: {e}")))?;
        Ok(EcOutput {
            id: Some(id.trim().to_owned()),
            headers: Vec::new(),
        })
    }
}

gatehouse_provider::export_edge_cookie_provider!(FileProvider);
