//! Every `ORCH_*` key orch reads, parsed once into a typed `Config`.
//!
//! Nothing else in the crate calls `std::env::var`. A bad value never stops a command: the key
//! falls back to its default, the problem becomes a one-line warning, and `orch doctor` reports it
//! and exits non-zero. Flags override env. `.env.example` lists exactly the keys read here.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

/// Where an effective value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Default,
    Env,
    Flag,
    /// `orch repo set NAME KEY=VALUE`: this repository's own value.
    Repo,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Default => "default",
            Source::Env => "env",
            Source::Flag => "flag",
            Source::Repo => "repo",
        })
    }
}

/// One key as `orch doctor` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    pub key: &'static str,
    pub value: String,
    pub source: Source,
    /// The value that was set and refused (the default is used instead), and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refused>,
}

/// A value that was set but could not be used.
#[derive(Clone, Debug, Serialize)]
pub struct Refused {
    /// What the environment (or the repository) held.
    pub raw: String,
    /// Where it came from.
    pub from: Source,
    /// Why it was refused, without the hint: `is not a duration`.
    pub why: String,
}

/// An `ORCH_*` name in the environment that orch neither reads nor sets: most likely a typo.
#[derive(Clone, Debug, Serialize)]
pub struct UnknownName {
    pub name: String,
    /// The closest real key, when one is close enough to be the one meant.
    pub closest: Option<&'static str>,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown setting {}", crate::ui::plain(&self.name))?;
        match self.closest {
            Some(key) => write!(f, " (did you mean {key}?)"),
            None => f.write_str(" (hint: `orch doctor` lists every key orch reads)"),
        }
    }
}

/// A value that could not be used; its key fell back to the default.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The first signal sent to a process group that outlives its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum KillSignal {
    #[value(name = "INT")]
    Int,
    #[value(name = "TERM")]
    Term,
}

impl KillSignal {
    pub fn signal(self) -> nix::sys::signal::Signal {
        match self {
            KillSignal::Int => nix::sys::signal::Signal::SIGINT,
            KillSignal::Term => nix::sys::signal::Signal::SIGTERM,
        }
    }
}

/// Whether the agent's code is confined (`ORCH_GATE_SANDBOX`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GateSandbox {
    /// Landlock where the kernel has it, recorded either way.
    Auto,
    /// No confinement (recorded per run).
    Off,
}

impl Value for GateSandbox {
    fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(GateSandbox::Auto),
            "off" => Ok(GateSandbox::Off),
            _ => Err("is not a sandbox mode (use auto or off)".into()),
        }
    }
    fn show(&self) -> String {
        match self {
            GateSandbox::Auto => "auto".into(),
            GateSandbox::Off => "off".into(),
        }
    }
}

/// Which repositories the transition lease covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum RepoScope {
    All,
    Only(Vec<String>),
}

impl RepoScope {
    pub fn covers(&self, repo: &str) -> bool {
        match self {
            RepoScope::All => true,
            RepoScope::Only(repos) => repos.iter().any(|r| r == repo),
        }
    }
}

/// A value type a key can hold: how to parse it from the environment and show it back.
trait Value: Sized {
    fn parse(raw: &str) -> Result<Self, String>;
    fn show(&self) -> String;
}

impl Value for bool {
    fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err("is not a boolean (use true or false)".into()),
        }
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

impl Value for u32 {
    fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().parse::<u64>() {
            Ok(n) if n <= u64::from(MAX_COUNT) => Ok(n as u32),
            Ok(_) => Err(format!("is larger than the maximum count {MAX_COUNT}")),
            Err(_) => Err("is not a non-negative integer".into()),
        }
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

/// Only `ORCH_OUTPUT_CAP_BYTES` is a `u64`: a number of bytes, at most `MAX_BYTES`.
impl Value for u64 {
    fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().parse::<u64>() {
            Ok(n) if n <= MAX_BYTES => Ok(n),
            Ok(_) => Err(format!(
                "is larger than the maximum {MAX_BYTES} bytes (1 GiB)"
            )),
            Err(_) => Err("is not a non-negative integer".into()),
        }
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

impl Value for Duration {
    fn parse(raw: &str) -> Result<Self, String> {
        parse_duration(raw)
    }
    fn show(&self) -> String {
        humantime::format_duration(*self).to_string()
    }
}

impl Value for String {
    fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("is empty".into());
        }
        Ok(raw.to_string())
    }
    fn show(&self) -> String {
        self.clone()
    }
}

impl Value for Option<String> {
    fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        Ok((!raw.is_empty()).then(|| raw.to_string()))
    }
    fn show(&self) -> String {
        self.clone().unwrap_or_else(|| "(unset)".into())
    }
}

impl Value for KillSignal {
    fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_uppercase().trim_start_matches("SIG") {
            "INT" => Ok(KillSignal::Int),
            "TERM" => Ok(KillSignal::Term),
            _ => Err("is not a kill signal (use INT or TERM)".into()),
        }
    }
    fn show(&self) -> String {
        match self {
            KillSignal::Int => "INT".into(),
            KillSignal::Term => "TERM".into(),
        }
    }
}

impl Value for RepoScope {
    fn parse(raw: &str) -> Result<Self, String> {
        let repos: Vec<String> = raw
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(String::from)
            .collect();
        if repos.is_empty() {
            Err("is empty (use `*` for every repository)".into())
        } else if repos.iter().any(|r| r == "*") {
            Ok(RepoScope::All)
        } else {
            Ok(RepoScope::Only(repos))
        }
    }
    fn show(&self) -> String {
        match self {
            RepoScope::All => "*".into(),
            RepoScope::Only(repos) => repos.join(","),
        }
    }
}

impl Value for f64 {
    fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().parse::<f64>() {
            Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
            _ => Err("is not a percentage between 0 and 100".into()),
        }
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

/// Names orch sets (never reads) in the environment of the commands it runs.
pub const SET_FOR_COMMANDS: &[&str] = &[
    "ORCH_TASK_ID",
    "ORCH_BRANCH",
    "ORCH_TARGET",
    "ORCH_REPO",
    "ORCH_REPO_URL",
    "ORCH_MERGE_HEAD",
    "ORCH_MERGE_BASE",
    "ORCH_COVERAGE_REPORT",
];

/// The gate keys a repository may set for its own tasks (`orch repo set NAME KEY=VALUE`): its
/// commands, timeouts, coverage minimum and retry budget. Everything else is host-wide.
pub const REPO_KEYS: &[&str] = &[
    "ORCH_MERGE_RETEST_CMD",
    "ORCH_MERGE_RETEST_TIMEOUT_S",
    "ORCH_MERGE_RETEST_SKIP_WHEN_CURRENT_ENABLED",
    "ORCH_MERGE_INFRA_RETRY_MAX",
    "ORCH_MERGE_INFRA_RETRY_BACKOFF_S",
    "ORCH_SECURITY_GATE_CMD",
    "ORCH_SECURITY_GATE_TIMEOUT_S",
    "ORCH_COVERAGE_CMD",
    "ORCH_COVERAGE_TIMEOUT_S",
    "ORCH_COVERAGE_MIN",
    "ORCH_IMAGE_FRESHNESS_CMD",
    "ORCH_IMAGE_FRESHNESS_TIMEOUT_S",
    "ORCH_MERGE_CMD",
    "ORCH_MERGE_CMD_TIMEOUT_S",
    "ORCH_GATE_ENV_PASS",
];

/// The longest duration any key may hold: 7 days. Every sum and product of configured values
/// (a timeout plus the grace, a deferral delay times its attempts, a backoff doubled up to
/// `u32::MAX` times, in milliseconds) then stays far inside `Duration`, `Instant` and `i64`.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The largest count any key may hold (retries, attempts, runs, days of retention).
pub const MAX_COUNT: u32 = 1_000_000;

/// The largest `ORCH_OUTPUT_CAP_BYTES`: 1 GiB kept per run is already more than anyone reads.
pub const MAX_BYTES: u64 = 1 << 30;

/// Integer seconds, or a humantime value (`15m`, `1h 30m`); zero and more than `MAX_DURATION`
/// are refused.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let parsed = match raw.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(raw)
            .map_err(|_| "is not a duration (use integer seconds or e.g. `15m`)".to_string())?,
    };
    if parsed.is_zero() {
        return Err("must be greater than zero".into());
    }
    if parsed > MAX_DURATION {
        return Err("is longer than the maximum 7 days (604800 s)".into());
    }
    Ok(parsed)
}

/// The effective configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub db_path: PathBuf,
    /// Whether `db_path` is the default (XDG) one, not given by --db or ORCH_DB_PATH: only then
    /// may `repo add` create its missing parent directories.
    pub db_path_is_default: bool,
    pub lease_enabled: bool,
    pub lease_repos: RepoScope,
    pub lease_ttl: Duration,
    pub lease_renew: Duration,
    pub max_dev_retries: u32,
    pub tree_kill_enabled: bool,
    pub kill_signal: KillSignal,
    pub kill_grace: Duration,
    pub output_cap_bytes: u64,
    pub max_concurrent_runs: u32,
    pub merge_retest_cmd: String,
    pub merge_retest_timeout: Duration,
    pub merge_skip_when_current: bool,
    pub merge_infra_retry_enabled: bool,
    pub merge_infra_retry_max: u32,
    pub merge_infra_backoff: Duration,
    pub merge_defer_delay: Duration,
    pub merge_defer_max_attempts: u32,
    pub alert_cmd: Option<String>,
    pub alert_timeout: Duration,
    pub security_cmd: Option<String>,
    pub security_timeout: Duration,
    pub coverage_cmd: Option<String>,
    pub coverage_timeout: Duration,
    pub coverage_min: f64,
    pub image_freshness_cmd: Option<String>,
    pub image_freshness_timeout: Duration,
    pub merge_cmd: Option<String>,
    pub merge_cmd_timeout: Duration,
    pub reaper_enabled: bool,
    /// How often cron runs `orch reap`: `orch queue` flags a reaper silent for 3 × this.
    pub reaper_interval: Duration,
    /// Tier 2: a run older than this is reaped whether its owner lives or not.
    pub reaper_max_running: Duration,
    /// Finished runs, processed event ids and reaper runs older than this are pruned; 0 keeps
    /// them forever.
    pub retention_days: u32,
    /// Variables of orch's environment that the agent's code also gets (comma list of names).
    pub gate_env_pass: Option<String>,
    /// Paths the agent's code may write besides its working copy and `TMPDIR` (comma list;
    /// `$HOME` is expanded).
    pub gate_writable: String,
    pub gate_sandbox: GateSandbox,
    /// Every key with its effective value and source, in `.env.example` order.
    pub entries: Vec<Entry>,
    /// Values that were refused; their keys use the default.
    pub problems: Vec<Problem>,
    /// `ORCH_*` names in the environment that orch neither reads nor sets (`Config::from_env`).
    pub unknown: Vec<UnknownName>,
    /// The raw value of every key that was set, for a repository's view (`Config::for_repo`).
    raw: Vec<(&'static str, String)>,
}

struct Loader<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    entries: Vec<Entry>,
    problems: Vec<Problem>,
    raw: Vec<(&'static str, String)>,
}

impl Loader<'_> {
    fn get<T: Value>(&mut self, key: &'static str, default: &str) -> T {
        let fallback = T::parse(default).expect("built-in defaults parse");
        let found = (self.env)(key);
        if let Some(raw) = &found {
            self.raw.push((key, raw.clone()));
        }
        let mut refused = None;
        let (value, source) = match found {
            None => (fallback, Source::Default),
            Some(raw) => match T::parse(&raw) {
                Ok(v) => (v, Source::Env),
                Err(why) => {
                    self.problems.push(Problem {
                        key: key.to_string(),
                        message: format!(
                            "{key}={} {why}; using the default {}",
                            shown(&raw),
                            fallback.show()
                        ),
                    });
                    // The reason without its hint (`is not a duration`), for doctor's column.
                    let short = why.split(" (").next().unwrap_or(&why).to_string();
                    refused = Some(Refused {
                        raw,
                        from: Source::Env,
                        why: short,
                    });
                    (fallback, Source::Default)
                }
            },
        };
        self.entries.push(Entry {
            key,
            value: value.show(),
            source,
            refused,
        });
        value
    }
}

impl Config {
    /// Reads the process environment, and notes the `ORCH_*` names in it that are not keys.
    pub fn from_env(db_flag: Option<&Path>) -> Config {
        let mut config = Config::load(&|key| std::env::var(key).ok(), db_flag);
        let names: Vec<String> = std::env::vars_os()
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect();
        config.unknown = unknown_names(names.iter().map(String::as_str));
        config
    }

    /// Reads every key through `env`; `db_flag` is `--db`, which overrides `ORCH_DB_PATH`.
    pub fn load(env: &dyn Fn(&str) -> Option<String>, db_flag: Option<&Path>) -> Config {
        let mut l = Loader {
            env,
            entries: Vec::new(),
            problems: Vec::new(),
            raw: Vec::new(),
        };
        let (db_path, db_source) = match (db_flag, env("ORCH_DB_PATH").filter(|p| !p.is_empty())) {
            (Some(flag), _) => (flag.to_path_buf(), Source::Flag),
            (None, Some(path)) => (PathBuf::from(path), Source::Env),
            (None, None) => (default_db_path(env), Source::Default),
        };
        l.entries.push(Entry {
            key: "ORCH_DB_PATH",
            value: db_path.display().to_string(),
            source: db_source,
            refused: None,
        });
        let mut config = Config {
            db_path_is_default: matches!(db_source, Source::Default),
            db_path,
            lease_enabled: l.get("ORCH_TRANSITION_LEASE_ENABLED", "true"),
            lease_repos: l.get("ORCH_TRANSITION_LEASE_REPOS", "*"),
            lease_ttl: l.get("ORCH_TRANSITION_LEASE_TTL_S", "60"),
            lease_renew: l.get("ORCH_TRANSITION_LEASE_RENEW_S", "10"),
            max_dev_retries: l.get("ORCH_MAX_DEV_RETRIES", "3"),
            tree_kill_enabled: l.get("ORCH_SUBPROCESS_TREE_KILL_ENABLED", "true"),
            kill_signal: l.get("ORCH_KILL_SIGNAL", "INT"),
            kill_grace: l.get("ORCH_KILL_GRACE_S", "20"),
            output_cap_bytes: l.get("ORCH_OUTPUT_CAP_BYTES", "262144"),
            max_concurrent_runs: l.get("ORCH_MAX_CONCURRENT_RUNS", "1"),
            merge_retest_cmd: l.get("ORCH_MERGE_RETEST_CMD", "python3 -m pytest -q"),
            merge_retest_timeout: l.get("ORCH_MERGE_RETEST_TIMEOUT_S", "900"),
            merge_skip_when_current: l.get("ORCH_MERGE_RETEST_SKIP_WHEN_CURRENT_ENABLED", "true"),
            merge_infra_retry_enabled: l.get("ORCH_MERGE_INFRA_RETRY_ENABLED", "true"),
            merge_infra_retry_max: l.get("ORCH_MERGE_INFRA_RETRY_MAX", "2"),
            merge_infra_backoff: l.get("ORCH_MERGE_INFRA_RETRY_BACKOFF_S", "120"),
            merge_defer_delay: l.get("ORCH_MERGE_DEFER_DELAY_S", "60"),
            merge_defer_max_attempts: l.get("ORCH_MERGE_DEFER_MAX_ATTEMPTS", "20"),
            security_cmd: l.get("ORCH_SECURITY_GATE_CMD", ""),
            security_timeout: l.get("ORCH_SECURITY_GATE_TIMEOUT_S", "600"),
            coverage_cmd: l.get("ORCH_COVERAGE_CMD", ""),
            coverage_timeout: l.get("ORCH_COVERAGE_TIMEOUT_S", "900"),
            coverage_min: l.get("ORCH_COVERAGE_MIN", "0"),
            image_freshness_cmd: l.get("ORCH_IMAGE_FRESHNESS_CMD", ""),
            image_freshness_timeout: l.get("ORCH_IMAGE_FRESHNESS_TIMEOUT_S", "120"),
            merge_cmd: l.get("ORCH_MERGE_CMD", ""),
            merge_cmd_timeout: l.get("ORCH_MERGE_CMD_TIMEOUT_S", "120"),
            alert_cmd: l.get("ORCH_ALERT_CMD", ""),
            alert_timeout: l.get("ORCH_ALERT_TIMEOUT_S", "30"),
            reaper_enabled: l.get("ORCH_REAPER_ENABLED", "true"),
            reaper_interval: l.get("ORCH_REAPER_INTERVAL_S", "60"),
            reaper_max_running: l.get("ORCH_REAPER_MAX_RUNNING_S", "5400"),
            retention_days: l.get("ORCH_RETENTION_DAYS", "30"),
            gate_env_pass: l.get("ORCH_GATE_ENV_PASS", ""),
            gate_writable: l.get("ORCH_GATE_WRITABLE", "$HOME/.cache"),
            gate_sandbox: l.get("ORCH_GATE_SANDBOX", "auto"),
            entries: Vec::new(),
            problems: Vec::new(),
            unknown: Vec::new(),
            raw: Vec::new(),
        };
        config.entries = l.entries;
        config.problems = l.problems;
        config.raw = l.raw;
        config
    }

    /// The configuration a repository's tasks are gated with: its own values (`orch repo set`)
    /// over the environment's, each entry's source saying which.
    pub(crate) fn for_repo(&self, settings: &[(String, String)]) -> Config {
        let own = |key: &str| {
            settings
                .iter()
                .find(|(k, _)| k == key && REPO_KEYS.contains(&key))
                .map(|(_, v)| v.clone())
        };
        let env = |key: &str| {
            own(key).or_else(|| {
                self.raw
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.clone())
            })
        };
        let mut config = Config::load(&env, Some(&self.db_path));
        config.unknown = self.unknown.clone();
        for entry in &mut config.entries {
            if let Some(refused) = &mut entry.refused {
                if own(entry.key).is_some() {
                    refused.from = Source::Repo;
                }
            }
            if entry.key == "ORCH_DB_PATH" {
                if let Some(mine) = self.entries.iter().find(|e| e.key == "ORCH_DB_PATH") {
                    entry.source = mine.source;
                }
            } else if entry.source == Source::Env && own(entry.key).is_some() {
                entry.source = Source::Repo;
            }
        }
        config
    }

    /// Why `value` cannot be a repository's `key`, if it cannot.
    pub(crate) fn check_repo_setting(key: &str, value: &str) -> Result<(), String> {
        if !REPO_KEYS.contains(&key) {
            return Err(format!(
                "`{key}` is not a per-repository key (hint: one of {})",
                REPO_KEYS.join(", ")
            ));
        }
        let loaded = Config::load(&|k| (k == key).then(|| value.to_string()), None);
        match loaded.problems.into_iter().next() {
            Some(problem) => Err(problem
                .message
                .replace("; using the default", ", refused; the default is")),
            None => Ok(()),
        }
    }

    /// The directory of the database: orch's state (mirrors, gate worktrees).
    pub(crate) fn state_dir(&self) -> PathBuf {
        self.db_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf()
    }

    /// A stable hash of what decides a re-test's verdict (its command and timeout): a stored
    /// verdict is reused only while it is unchanged.
    pub(crate) fn retest_hash(&self) -> String {
        // FNV-1a, 64 bit: stable across builds and platforms, unlike `DefaultHasher`.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let input = format!(
            "{}\0{}",
            self.merge_retest_cmd,
            self.merge_retest_timeout.as_millis()
        );
        for byte in input.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{hash:016x}")
    }

    /// Whether lease + CAS guard writes to tasks of `repo`; otherwise writes are plain.
    pub fn lease_applies(&self, repo: &str) -> bool {
        self.lease_enabled && self.lease_repos.covers(repo)
    }

    /// Every gate's hard timeout, by key: the reaper's maximum must stay above each of them plus
    /// the kill grace.
    pub fn gate_timeouts(&self) -> Vec<(&'static str, Duration)> {
        vec![
            ("ORCH_MERGE_RETEST_TIMEOUT_S", self.merge_retest_timeout),
            ("ORCH_SECURITY_GATE_TIMEOUT_S", self.security_timeout),
            ("ORCH_COVERAGE_TIMEOUT_S", self.coverage_timeout),
            (
                "ORCH_IMAGE_FRESHNESS_TIMEOUT_S",
                self.image_freshness_timeout,
            ),
            ("ORCH_MERGE_CMD_TIMEOUT_S", self.merge_cmd_timeout),
        ]
    }

    /// `ORCH_REAPER_MAX_RUNNING_S > every gate timeout + ORCH_KILL_GRACE_S`, violated: reaping by
    /// age would kill a step still inside its own timeout, so the reaper refuses tier 2.
    pub fn reaper_max_violations(&self) -> Vec<String> {
        self.gate_timeouts()
            .into_iter()
            .filter(|(_, timeout)| {
                self.reaper_max_running <= timeout.saturating_add(self.kill_grace)
            })
            .map(|(key, timeout)| {
                format!(
                    "ORCH_REAPER_MAX_RUNNING_S ({}) must be greater than {key} + ORCH_KILL_GRACE_S ({}s), or the reaper kills a step still inside its timeout; raise ORCH_REAPER_MAX_RUNNING_S (reaping by age is refused until then)",
                    self.reaper_max_running.as_secs(),
                    timeout.saturating_add(self.kill_grace).as_secs()
                )
            })
            .collect()
    }

    /// The cross-key invariants of DESIGN.md's "Configuration" section that do not hold.
    pub fn invariant_violations(&self) -> Vec<String> {
        let mut violations = self.reaper_max_violations();
        if self.lease_ttl < self.lease_renew.saturating_mul(3) {
            violations.push(format!(
                "ORCH_TRANSITION_LEASE_TTL_S ({}) must be at least 3 × ORCH_TRANSITION_LEASE_RENEW_S ({}); raise the TTL or renew more often",
                self.lease_ttl.as_secs(),
                self.lease_renew.as_secs()
            ));
        }
        let defer_window = self
            .merge_defer_delay
            .saturating_mul(self.merge_defer_max_attempts);
        // The merge lock's whole span: at worst merge-verify holds it across a merge command
        // that fails because the target moved, the re-test that follows, and a second merge
        // command — each killed after its timeout plus the grace.
        let merge = self.merge_cmd_timeout.saturating_add(self.kill_grace);
        let span = self
            .merge_retest_timeout
            .saturating_add(self.kill_grace)
            .saturating_add(merge.saturating_mul(2));
        if defer_window < span {
            violations.push(format!(
                "ORCH_MERGE_DEFER_DELAY_S × ORCH_MERGE_DEFER_MAX_ATTEMPTS ({}s) must cover the merge lock's whole span, ORCH_MERGE_RETEST_TIMEOUT_S + ORCH_KILL_GRACE_S + 2 × (ORCH_MERGE_CMD_TIMEOUT_S + ORCH_KILL_GRACE_S) ({}s: merge-verify may hold the lock across a merge command refused because the target moved, a re-test and a second merge command), or a lock-busy task gives up while the holder may still run; raise the deferral delay or attempts",
                defer_window.as_secs(),
                span.as_secs()
            ));
        }
        violations
    }
}

/// Every key orch reads, in `.env.example` order.
pub fn keys() -> Vec<&'static str> {
    Config::load(&|_| None, None)
        .entries
        .iter()
        .map(|e| e.key)
        .collect()
}

/// The `ORCH_*` names among `names` that are neither a key orch reads nor a name it sets for
/// its commands, each with the closest key when the edit distance says it was likely meant.
pub fn unknown_names<'a>(names: impl Iterator<Item = &'a str>) -> Vec<UnknownName> {
    let keys = keys();
    let mut unknown: Vec<UnknownName> = names
        .filter(|n| n.starts_with("ORCH_"))
        .filter(|n| !keys.contains(n) && !SET_FOR_COMMANDS.contains(n))
        .map(|name| {
            let closest = keys
                .iter()
                // Case-insensitively: `ORCH_db_path` means ORCH_DB_PATH.
                .map(|k| (edit_distance(&name.to_ascii_uppercase(), k), *k))
                .min()
                .filter(|(d, _)| *d <= (name.len() / 4).max(2))
                .map(|(_, k)| k);
            UnknownName {
                name: name.to_string(),
                closest,
            }
        })
        .collect();
    unknown.sort_by(|a, b| a.name.cmp(&b.name));
    unknown.dedup_by(|a, b| a.name == b.name);
    unknown
}

/// A refused value as a warning shows it: quoted, and cut to a prefix with its length when long
/// (a 100 kB value must not be echoed in every cron mail).
fn shown(raw: &str) -> String {
    const SHOWN: usize = 64;
    if raw.chars().count() <= SHOWN {
        return format!("{raw:?}");
    }
    let head: String = raw.chars().take(SHOWN).collect();
    format!("{head:?}… ({} bytes)", raw.len())
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// `$XDG_STATE_HOME/orch/orch.db`, falling back to `~/.local/state/orch/orch.db`.
fn default_db_path(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    let state = env("XDG_STATE_HOME")
        .filter(|p| Path::new(p).is_absolute())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env("HOME").unwrap_or_else(|| "/".into())).join(".local/state")
        });
    state.join("orch").join("orch.db")
}

/// The environment the agent's code starts from: `PATH`, `HOME`, `LANG` and `LC_*` of orch's
/// own, and the variables `pass` names (`ORCH_GATE_ENV_PASS`) that are set. Nothing else —
/// never `ORCH_DB_PATH`, the alert or merge commands, or a token orch was given.
pub(crate) fn gate_env(pass: Option<&str>) -> Vec<(String, String)> {
    let named: Vec<&str> = pass
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        // orch's own keys never pass: `ORCH_GATE_ENV_PASS=ORCH_DB_PATH` would hand the suite the
        // database; the names orch sets for commands are added by the gate itself.
        .filter(|n| !n.is_empty() && !n.starts_with("ORCH_"))
        .collect();
    std::env::vars()
        .filter(|(k, _)| {
            matches!(k.as_str(), "PATH" | "HOME" | "LANG")
                || k.starts_with("LC_")
                || named.contains(&k.as_str())
        })
        .collect()
}

impl Config {
    /// `ORCH_GATE_WRITABLE` as paths, `$HOME` expanded.
    pub(crate) fn gate_writable_paths(&self) -> Vec<PathBuf> {
        let home = std::env::var("HOME").unwrap_or_default();
        self.gate_writable
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| PathBuf::from(p.replace("$HOME", &home)))
            .collect()
    }
}

/// The name of whoever runs this command, for `--actor`'s default.
pub fn default_actor() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "operator".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Config {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(&move |k| map.get(k).cloned(), None)
    }

    #[test]
    fn a_bad_value_falls_back_with_a_problem_naming_the_key() {
        let c = load(&[("ORCH_MAX_DEV_RETRIES", "abc")]);
        assert_eq!(c.max_dev_retries, 3);
        assert_eq!(c.problems.len(), 1);
        assert!(c.problems[0]
            .message
            .starts_with("ORCH_MAX_DEV_RETRIES=\"abc\""));
    }

    #[test]
    fn durations_take_seconds_or_humantime_and_refuse_zero() {
        assert_eq!(parse_duration("15").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn the_db_flag_beats_the_env_which_beats_the_xdg_default() {
        let c = load(&[("XDG_STATE_HOME", "/state")]);
        assert_eq!(c.db_path, PathBuf::from("/state/orch/orch.db"));
        let c = load(&[("ORCH_DB_PATH", "/e.db")]);
        assert_eq!(c.db_path, PathBuf::from("/e.db"));
        let env = |_: &str| Some("/e.db".to_string());
        let c = Config::load(&env, Some(Path::new("/f.db")));
        assert_eq!(c.db_path, PathBuf::from("/f.db"));
        assert_eq!(c.entries[0].source, Source::Flag);
    }

    #[test]
    fn scope_lists_repos_and_star_means_all() {
        let c = load(&[("ORCH_TRANSITION_LEASE_REPOS", "a, b")]);
        assert!(c.lease_applies("a") && c.lease_applies("b") && !c.lease_applies("c"));
        assert!(load(&[]).lease_applies("anything"));
        assert!(!load(&[("ORCH_TRANSITION_LEASE_ENABLED", "false")]).lease_applies("a"));
    }

    #[test]
    fn a_reaper_maximum_under_a_gate_timeout_plus_grace_is_a_violation() {
        let c = load(&[
            ("ORCH_REAPER_MAX_RUNNING_S", "920"),
            ("ORCH_MERGE_RETEST_TIMEOUT_S", "900"),
            ("ORCH_KILL_GRACE_S", "20"),
        ]);
        // The re-test and the coverage command both default to 900 s: both are named.
        let violations = c.reaper_max_violations();
        assert_eq!(violations.len(), 2, "{violations:?}");
        assert!(violations[0].contains("ORCH_MERGE_RETEST_TIMEOUT_S"));
        assert!(violations[1].contains("ORCH_COVERAGE_TIMEOUT_S"));
        assert!(c.invariant_violations()[0].starts_with("ORCH_REAPER_MAX_RUNNING_S (920)"));
        let c = load(&[("ORCH_REAPER_MAX_RUNNING_S", "921")]);
        assert!(c.reaper_max_violations().is_empty());
    }

    #[test]
    fn the_deferral_window_must_cover_the_merge_locks_whole_span() {
        // 60 + 1 + 2 × (120 + 1) = 303 s: a re-test and two merge commands, each with the grace.
        let short = load(&[
            ("ORCH_MERGE_RETEST_TIMEOUT_S", "60"),
            ("ORCH_KILL_GRACE_S", "1"),
            ("ORCH_MERGE_DEFER_DELAY_S", "1"),
            ("ORCH_MERGE_DEFER_MAX_ATTEMPTS", "302"),
        ]);
        let violations = short.invariant_violations();
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(
            violations[0].starts_with("ORCH_MERGE_DEFER_DELAY_S × ORCH_MERGE_DEFER_MAX_ATTEMPTS (302s) must cover the merge lock's whole span")
                && violations[0].contains("ORCH_MERGE_CMD_TIMEOUT_S")
                && violations[0].contains("(303s"),
            "{violations:?}"
        );
        let covered = load(&[
            ("ORCH_MERGE_RETEST_TIMEOUT_S", "60"),
            ("ORCH_KILL_GRACE_S", "1"),
            ("ORCH_MERGE_DEFER_DELAY_S", "1"),
            ("ORCH_MERGE_DEFER_MAX_ATTEMPTS", "303"),
        ]);
        assert!(covered.invariant_violations().is_empty());
        // The defaults: 20 × 60 s = 1200 s ≥ 900 + 20 + 2 × (120 + 20).
        assert!(load(&[]).invariant_violations().is_empty());
    }

    #[test]
    fn a_short_ttl_violates_the_renewal_invariant() {
        let c = load(&[("ORCH_TRANSITION_LEASE_TTL_S", "20")]);
        assert_eq!(c.invariant_violations().len(), 1);
        assert!(load(&[]).invariant_violations().is_empty());
    }

    #[test]
    fn durations_and_counts_over_their_maximum_are_refused() {
        assert_eq!(parse_duration("7d").unwrap(), MAX_DURATION);
        for raw in ["604801", "18446744073709551615", "8d", "1e19", "nan", "-1"] {
            assert!(parse_duration(raw).is_err(), "{raw}");
        }
        let c = load(&[
            ("ORCH_MAX_DEV_RETRIES", "1000001"),
            ("ORCH_OUTPUT_CAP_BYTES", "18446744073709551615"),
        ]);
        assert_eq!((c.max_dev_retries, c.output_cap_bytes), (3, 262144));
        assert_eq!(c.problems.len(), 2, "{:?}", c.problems);
    }

    #[test]
    fn the_largest_values_keep_every_invariant_check_in_range() {
        let max = MAX_DURATION.as_secs().to_string();
        let count = MAX_COUNT.to_string();
        let pairs: Vec<(&str, &str)> = keys()
            .into_iter()
            .map(|k| {
                let v = if k.ends_with("_S") {
                    max.as_str()
                } else {
                    count.as_str()
                };
                (k, v)
            })
            .collect();
        let c = load(&pairs);
        let _ = c.invariant_violations();
        let _ = c.retest_hash();
    }

    #[test]
    fn the_closest_key_is_suggested_for_a_typo() {
        // Spelled in lower case here: tests/cli/docs.rs holds every `ORCH_` literal in src/ to
        // `.env.example`.
        let names = [
            "orch_kill_grace",
            "orch_task_id",
            "orch_db_path",
            "path",
            "orch_qqqqqqqq",
        ]
        .map(str::to_ascii_uppercase);
        let unknown = unknown_names(names.iter().map(String::as_str));
        assert_eq!(unknown.len(), 2, "{unknown:?}");
        assert_eq!(unknown[0].closest, Some("ORCH_KILL_GRACE_S"));
        assert_eq!(unknown[1].closest, None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    proptest::proptest! {
        // Any string as the value of any key: loading never panics, and neither do the checks
        // that add and multiply configured values, nor a repository's view of them.
        #[test]
        fn no_value_of_any_key_panics(
            index in 0usize..64,
            raw in proptest::prelude::any::<String>(),
            digits in "[0-9]{1,30}",
            unit in proptest::sample::select(vec!["", "s", "ms", "m", "h", "d", "y", "e19", ".5"]),
        ) {
            let keys = keys();
            let key = keys[index % keys.len()];
            for value in [raw.clone(), format!("{digits}{unit}"), format!("-{digits}")] {
                let c = load(&[(key, value.as_str())]);
                let _ = c.invariant_violations();
                let _ = c.reaper_max_violations();
                let _ = c.retest_hash();
                let _ = c.for_repo(&[(key.to_string(), value.clone())]);
                let _ = Config::check_repo_setting(key, &value);
            }
        }
    }
}
