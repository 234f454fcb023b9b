//! `elements check COMPONENT.wasm [MANIFEST.toml]`: the deploy's checks,
//! offline. The checker builds the host exactly as the server does
//! ([`crate::build_host`], over a temporary SQLite store) and runs
//! [`Element::deploy`] on the component and manifest: manifest parse and
//! validation, grants, attribute types and ranges, limits, component bounds,
//! validation and compilation, imports and the exported interfaces. Nothing
//! is mounted and nothing is served.
//!
//! A deploy stops at its first problem. So that an author sees both kinds at
//! once, a manifest problem (which stops the deploy before anything is
//! compiled) is followed by a second deploy of the component alone, without
//! the manifest, for the component's own problems.
//!
//! Grants: a deploy needs the operator's approval of every grant the
//! manifest requests. The checker approves them (it checks the Element, not
//! a server's configuration) and lists them, so the author knows what an
//! operator will be asked for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use elements_config::Config;
use elements_host::element::manifest::Manifest;
use elements_host::element::{DeployError, Element, ElementSource};
use elements_host::events::EventBus;
use elements_host::log_buffer::LogBuffer;
use elements_identity::{IdentityConfig, IdentityService};

/// What to check.
#[derive(Debug, Clone)]
pub struct CheckArgs {
    /// The component.
    pub component: PathBuf,
    /// The manifest, if any.
    pub manifest: Option<PathBuf>,
    /// The Element's name (by default the component's file name).
    pub name: String,
    /// Attribute values, as a deployment's `[values]`.
    pub values: BTreeMap<String, String>,
}

/// What the checks found.
#[derive(Debug, Default)]
pub struct Report {
    /// Every problem; empty when a deploy would succeed.
    pub problems: Vec<String>,
    /// The grants the manifest requests (an operator approves them).
    pub grants: Vec<String>,
    /// Where the Element would be mounted (`/app/rest/PREFIX`), when it passed.
    pub prefix: Option<String>,
}

const USAGE: &str =
    "usage: elements check COMPONENT.wasm [MANIFEST.toml] [--name NAME] [--value NAME=VALUE]...";

/// Parses the arguments after `check`.
pub fn parse_args(args: &[String]) -> Result<CheckArgs, String> {
    let mut files = Vec::new();
    let mut name = None;
    let mut values = BTreeMap::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--name" => name = Some(args.next().ok_or(USAGE)?.clone()),
            "--value" => {
                let pair = args.next().ok_or(USAGE)?;
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("--value {pair:?}: expected NAME=VALUE"))?;
                values.insert(k.to_owned(), v.to_owned());
            }
            "-h" | "--help" => return Err(USAGE.into()),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}\n{USAGE}")),
            file => files.push(PathBuf::from(file)),
        }
    }
    let (component, manifest) = match files.as_slice() {
        [component] => {
            // A manifest beside the component, as in a deploy folder.
            let beside = component.with_extension("toml");
            (component.clone(), beside.is_file().then_some(beside))
        }
        [component, manifest] => (component.clone(), Some(manifest.clone())),
        _ => return Err(USAGE.into()),
    };
    let name = match name {
        Some(name) => name,
        None => component
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| format!("{} has no file name; give --name", component.display()))?
            .to_owned(),
    };
    Ok(CheckArgs {
        component,
        manifest,
        name,
        values,
    })
}

/// Runs the deploy's checks.
pub async fn check(args: &CheckArgs) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let component = std::fs::read(&args.component)
        .with_context(|| format!("reading the component {}", args.component.display()))?;
    let manifest = match &args.manifest {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the manifest {}", path.display()))?,
        ),
        None => None,
    };
    let parsed = manifest.as_deref().map(Manifest::parse).transpose();
    let requested = match &parsed {
        Ok(Some(m)) => m.requested_grants(&args.name),
        _ => Default::default(),
    };
    report.grants = requested.iter().map(ToString::to_string).collect();

    let dir = tempfile_dir()?;
    let mut config = Config::in_dir(dir.path());
    config.element_grants.insert(args.name.clone(), requested);
    let store = elements_store::open_with(
        elements_store::StoreConfig::Sqlite(elements_store::SqliteConfig::in_data_dir(&config.data_dir)),
        Default::default(),
    )
    .await
    .context("opening a temporary store")?;
    let identity = Arc::new(
        IdentityService::new(store.clone(), IdentityConfig::default())
            .await
            .context("starting the identity service")?,
    );
    let realtime = Arc::new(
        elements_realtime::Hub::new("check", config.realtime.clone(), store.clone())
            .await
            .context("opening the realtime hub")?,
    );
    let (host, _, _ticker) = crate::build_host(
        &config,
        crate::HostParts {
            store,
            identity,
            events: Arc::new(EventBus::default()),
            realtime,
            outbound_stub: None,
        },
    )?;

    let deploy = |manifest: Option<String>, values: BTreeMap<String, String>| {
        let host = host.clone();
        let name = args.name.clone();
        let mut source = ElementSource::new(component.clone(), manifest);
        source.values = values;
        tokio::task::spawn_blocking(move || {
            Element::deploy(&host, &name, &source, Arc::new(LogBuffer::new()))
        })
    };
    match deploy(manifest.clone(), args.values.clone()).await? {
        Ok(element) => report.prefix = Some(element.prefix.clone()),
        Err(error) => {
            let about_manifest = !matches!(
                error,
                DeployError::TooLarge(_)
                    | DeployError::Compile(_)
                    | DeployError::UnknownImport(_)
                    | DeployError::MissingHandler(_)
                    | DeployError::MissingEventHandler(_)
                    | DeployError::ForeignExport { .. }
                    | DeployError::CompileTimeout(_)
            );
            report.problems.push(describe(&error, args));
            if about_manifest && let Err(error) = deploy(None, BTreeMap::new()).await? {
                report.problems.push(describe(&error, args));
            }
        }
    }
    Ok(report)
}

/// The deploy's message, saying which file it is about.
fn describe(error: &DeployError, args: &CheckArgs) -> String {
    let file = |path: &Path| path.display().to_string();
    match error {
        DeployError::Manifest(_) | DeployError::InvalidAttribute(..) | DeployError::Limits(_) => {
            let manifest = args
                .manifest
                .as_deref()
                .map(file)
                .unwrap_or_else(|| "no manifest".into());
            format!("{manifest}: {error}")
        }
        DeployError::MissingAttribute(name) => {
            format!("{error} (an operator sets it; check with --value {name}=VALUE to go on)")
        }
        DeployError::TooLarge(_)
        | DeployError::Compile(_)
        | DeployError::UnknownImport(_)
        | DeployError::MissingHandler(_)
        | DeployError::MissingEventHandler(_)
        | DeployError::ForeignExport { .. }
        | DeployError::CompileTimeout(_) => format!("{}: {error}", file(&args.component)),
        _ => error.to_string(),
    }
}

fn tempfile_dir() -> anyhow::Result<TempDir> {
    let base = std::env::temp_dir();
    for attempt in 0..100u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = base.join(format!("elements-check-{}-{nanos}-{attempt}", std::process::id()));
        if std::fs::create_dir(&path).is_ok() {
            return Ok(TempDir(path));
        }
    }
    anyhow::bail!("cannot create a temporary folder in {}", base.display())
}

/// A folder removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `elements check ...`: prints each problem and returns the exit code
/// (0: a deploy would succeed; 1: problems; 2: bad arguments).
pub fn main(args: &[String]) -> std::process::ExitCode {
    let args = match parse_args(args) {
        Ok(args) => args,
        Err(usage) => {
            eprintln!("{usage}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let report = match runtime.block_on(check(&args)) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if !report.grants.is_empty() {
        println!(
            "{} requests these grants (an operator approves them): {}",
            args.name,
            report.grants.join(", ")
        );
    }
    if report.problems.is_empty() {
        println!(
            "ok: {} passes the deploy checks (served at /app/rest/{})",
            args.name,
            report.prefix.as_deref().unwrap_or(&args.name)
        );
        std::process::ExitCode::SUCCESS
    } else {
        for problem in &report.problems {
            eprintln!("error: {problem}");
        }
        eprintln!(
            "{}: {} problem(s); a deploy would fail",
            args.name,
            report.problems.len()
        );
        std::process::ExitCode::FAILURE
    }
}
