//! Reloading the configuration of a running server (`SIGHUP`, `gatehouse reload`).
//!
//! A reload re-reads the config file, the policy file, the provider components (checked against
//! their pinned digests) and the TLS certificate files, and builds a complete new state with the
//! same function startup uses ([`crate::app::build`]). Only when every part is valid is it swapped
//! in, in one step: a request runs entirely on the old state or entirely on the new one. An invalid
//! configuration is refused, its error logged, and the old state keeps serving.
//!
//! The listener is not rebuilt: changes to `server.listen`, to whether `[server.tls]` is present,
//! to `server.pid_file` and to the drain settings need a restart, and the log says so.
//!
//! [`signal_running_server`] is the client side: `gatehouse reload` finds the server through
//! `server.pid_file` (or `--pid`) and sends it `SIGHUP`.

use std::path::{Path, PathBuf};

use crate::app::{self, BuildError};
use crate::config::{Config, ConfigError};
use crate::listener::{self, Live, Settings};

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new configuration is invalid.
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// Reloads the configuration of one running server.
pub struct Reloader {
    config_path: PathBuf,
    /// The listener settings the server was started with.
    started_with: Settings,
}

impl Reloader {
    /// A reloader for the server started from `config_path` with `started_with`.
    #[must_use]
    pub fn new(config_path: PathBuf, started_with: Settings) -> Self {
        Self {
            config_path,
            started_with,
        }
    }

    /// Re-reads and validates everything, then swaps it into `live`; on error, logs it and keeps
    /// the state `live` has. Blocking (providers are compiled): run it off the async workers.
    pub fn reload(&self, live: &Live) {
        tracing::info!(config = %self.config_path.display(), "reloading the configuration");
        match self.try_reload(live) {
            Ok(()) => tracing::info!("configuration reloaded"),
            Err(e) => {
                tracing::error!("reload refused, the previous configuration keeps serving: {e}")
            }
        }
    }

    fn try_reload(&self, live: &Live) -> Result<(), ReloadError> {
        let config = Config::load(&self.config_path).map_err(BuildError::from)?;
        let settings = Settings::from_config(&config).map_err(BuildError::from)?;
        self.warn_about_restart_only_changes(&settings);
        let app = app::build(&config)?;
        // Certificates are re-read (rotation); turning TLS on or off needs a restart.
        let tls = match &self.started_with.tls {
            None => None,
            Some(started) => {
                let files = settings.tls.as_ref().unwrap_or(started);
                Some(listener::tls_config(files).map_err(BuildError::from)?)
            }
        };
        live.replace(app, tls);
        Ok(())
    }

    fn warn_about_restart_only_changes(&self, new: &Settings) {
        let old = &self.started_with;
        let mut changed = Vec::new();
        if new.listen != old.listen {
            changed.push("server.listen");
        }
        if new.tls.is_some() != old.tls.is_some() {
            changed.push("server.tls");
        }
        if new.pid_file != old.pid_file {
            changed.push("server.pid_file");
        }
        if new.drain_delay != old.drain_delay {
            changed.push("server.drain_delay_ms");
        }
        if new.drain_timeout != old.drain_timeout {
            changed.push("server.drain_timeout_ms");
        }
        if new.limits != old.limits {
            changed.push("server (connection limits)");
        }
        if new.admin != old.admin {
            changed.push("admin.listen");
        }
        for key in changed {
            tracing::warn!("`{key}` changed: it takes effect only after a restart");
        }
    }
}

/// Why `gatehouse reload` could not signal the server.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// The config could not be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config names no pid file.
    #[error(
        "config key `server.pid_file`: is not set in `{0}`, so the running server cannot be found; set it or pass `--pid`"
    )]
    NoPidFile(PathBuf),
    /// The pid file could not be read or holds no process id.
    #[error("cannot read a process id from `{path}` (`server.pid_file`): {reason}")]
    PidFile {
        /// The pid file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The signal could not be sent.
    #[error("cannot signal process `{pid}`: {source}")]
    Kill {
        /// The process id.
        pid: i32,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Where `gatehouse reload` finds the server.
pub enum Target<'a> {
    /// A process id given on the command line.
    Pid(i32),
    /// The `server.pid_file` of this config file.
    Config(&'a Path),
}

/// Sends `SIGHUP` to the running server; returns its process id.
///
/// # Errors
/// When the server cannot be found or signalled.
pub fn signal_running_server(target: Target<'_>) -> Result<i32, SignalError> {
    let pid = match target {
        Target::Pid(pid) => pid,
        Target::Config(path) => {
            let config = Config::load(path)?;
            let pid_file = config
                .server
                .pid_file
                .ok_or_else(|| SignalError::NoPidFile(path.to_owned()))?;
            let text = std::fs::read_to_string(&pid_file).map_err(|e| SignalError::PidFile {
                path: pid_file.clone(),
                reason: e.to_string(),
            })?;
            text.trim().parse().map_err(|_| SignalError::PidFile {
                path: pid_file.clone(),
                reason: "not a process id".into(),
            })?
        }
    };
    // Zero and negative ids address process groups (-1: every process); never send those.
    let process = (pid > 0)
        .then(|| rustix::process::Pid::from_raw(pid))
        .flatten()
        .ok_or_else(|| SignalError::Kill {
            pid,
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a process id"),
        })?;
    rustix::process::kill_process(process, rustix::process::Signal::HUP).map_err(|e| {
        SignalError::Kill {
            pid,
            source: e.into(),
        }
    })?;
    Ok(pid)
}
