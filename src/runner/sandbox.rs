//! Landlock for the commands that run the agent's code: write access is *granted* only to the
//! run's working copy, its `TMPDIR`, `/dev/null`, `/dev/shm`, `/dev/pts` and `ORCH_GATE_WRITABLE`
//! — never the state directory. Reads are not confined.
//!
//! The ruleset is built here, in orch, before the command's leader is started; the leader applies
//! it to itself just before exec (`PR_SET_NO_NEW_PRIVS`, `landlock_restrict_self`), so orch itself
//! is never restricted. A kernel without Landlock runs the command unconfined and says so: the
//! run records `none` with the reason.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::libc;
use serde::Serialize;

// The kernel's Landlock ABI (linux/landlock.h).
const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: libc::c_int = 1;
const ACCESS_FS_WRITE_FILE: u64 = 1 << 1;
const ACCESS_FS_REMOVE_DIR: u64 = 1 << 4;
const ACCESS_FS_REMOVE_FILE: u64 = 1 << 5;
const ACCESS_FS_MAKE_CHAR: u64 = 1 << 6;
const ACCESS_FS_MAKE_DIR: u64 = 1 << 7;
const ACCESS_FS_MAKE_REG: u64 = 1 << 8;
const ACCESS_FS_MAKE_SOCK: u64 = 1 << 9;
const ACCESS_FS_MAKE_FIFO: u64 = 1 << 10;
const ACCESS_FS_MAKE_BLOCK: u64 = 1 << 11;
const ACCESS_FS_MAKE_SYM: u64 = 1 << 12;
const ACCESS_FS_REFER: u64 = 1 << 13;
const ACCESS_FS_TRUNCATE: u64 = 1 << 14;

const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    /// ABI 4.
    handled_access_net: u64,
    /// ABI 6: the sandboxed code may not signal, or connect to abstract unix sockets of,
    /// processes outside its own domain — orch among them.
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// What protection a run had, as `runs.sandbox`, `orch run show` and `orch doctor` report it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Protection {
    /// Writes confined by Landlock, with the kernel's ABI version.
    Landlock { abi: i32 },
    /// Not confined, and why.
    None { reason: String },
}

impl std::fmt::Display for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Protection::Landlock { abi } => write!(f, "landlock ABI {abi}"),
            Protection::None { reason } => write!(f, "none ({reason})"),
        }
    }
}

/// The kernel's Landlock ABI version, or why there is none.
pub fn abi() -> Result<i32, String> {
    // SAFETY: the documented probe: a NULL attribute, size 0 and the VERSION flag only ask the
    // kernel for its ABI version; no memory is passed.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    if v >= 1 {
        Ok(v as i32)
    } else {
        Err(format!(
            "the kernel has no Landlock: {}",
            std::io::Error::last_os_error()
        ))
    }
}

/// The write rights this ABI knows, and the subset that applies to a file (not a directory).
fn rights(abi: i32) -> (u64, u64) {
    let mut all = ACCESS_FS_WRITE_FILE
        | ACCESS_FS_REMOVE_DIR
        | ACCESS_FS_REMOVE_FILE
        | ACCESS_FS_MAKE_CHAR
        | ACCESS_FS_MAKE_DIR
        | ACCESS_FS_MAKE_REG
        | ACCESS_FS_MAKE_SOCK
        | ACCESS_FS_MAKE_FIFO
        | ACCESS_FS_MAKE_BLOCK
        | ACCESS_FS_MAKE_SYM;
    let mut file = ACCESS_FS_WRITE_FILE;
    if abi >= 2 {
        all |= ACCESS_FS_REFER;
    }
    if abi >= 3 {
        all |= ACCESS_FS_TRUNCATE;
        file |= ACCESS_FS_TRUNCATE;
    }
    (all, file)
}

/// A ruleset that handles every write right and grants them beneath `writable` only (paths that
/// do not exist are left out). The leader applies it before exec.
pub(crate) struct Ruleset {
    pub(crate) fd: OwnedFd,
    pub(crate) protection: Protection,
}

/// Builds the ruleset, or says why the command runs unconfined.
pub(crate) fn ruleset(writable: &[PathBuf]) -> Result<Ruleset, Protection> {
    let abi = abi().map_err(|reason| Protection::None { reason })?;
    let (all, file_rights) = rights(abi);
    let attr = RulesetAttr {
        handled_access_fs: all,
        handled_access_net: 0,
        scoped: if abi >= 6 {
            SCOPE_SIGNAL | SCOPE_ABSTRACT_UNIX_SOCKET
        } else {
            0
        },
    };
    // An older kernel knows only the first field: give it the size it knows.
    let size = if abi >= 6 {
        std::mem::size_of::<RulesetAttr>()
    } else {
        std::mem::size_of::<u64>()
    };
    // SAFETY: `attr` is a live landlock_ruleset_attr of at least `size` bytes for the whole call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            size,
            0u32,
        )
    };
    if fd < 0 {
        return Err(Protection::None {
            reason: format!(
                "creating a Landlock ruleset failed: {}",
                std::io::Error::last_os_error()
            ),
        });
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    let ruleset = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    for path in writable {
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
            continue;
        };
        // SAFETY: `c_path` is a valid NUL-terminated path for the duration of the call.
        let dir_fd = unsafe { libc::open(c_path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        if dir_fd < 0 {
            continue;
        }
        // SAFETY: `dir_fd` was just opened by us and is owned here.
        let dir_fd = unsafe { OwnedFd::from_raw_fd(dir_fd) };
        let rule = PathBeneathAttr {
            allowed_access: if meta.is_dir() { all } else { file_rights },
            parent_fd: std::os::fd::AsRawFd::as_raw_fd(&dir_fd),
        };
        // SAFETY: `rule` is a live landlock_path_beneath_attr and both descriptors are open.
        let added = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                std::os::fd::AsRawFd::as_raw_fd(&ruleset),
                RULE_PATH_BENEATH,
                &rule as *const PathBeneathAttr,
                0u32,
            )
        };
        if added < 0 {
            return Err(Protection::None {
                reason: format!(
                    "adding `{}` to the Landlock ruleset failed: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                ),
            });
        }
    }
    Ok(Ruleset {
        fd: ruleset,
        protection: Protection::Landlock { abi },
    })
}

/// Capabilities the agent's code never keeps, even run as root: changing owners, immutable
/// flags, mounts, tracing and devices would reach past what Landlock confines (which is writes).
pub(crate) const DROPPED_CAPS: &[libc::c_int] = &[
    0,  // CAP_CHOWN
    3,  // CAP_FOWNER
    4,  // CAP_FSETID
    9,  // CAP_LINUX_IMMUTABLE
    12, // CAP_NET_ADMIN
    16, // CAP_SYS_MODULE
    17, // CAP_SYS_RAWIO
    19, // CAP_SYS_PTRACE
    21, // CAP_SYS_ADMIN
    22, // CAP_SYS_BOOT
    25, // CAP_SYS_TIME
    27, // CAP_MKNOD
    31, // CAP_SETFCAP
    32, // CAP_MAC_OVERRIDE
    33, // CAP_MAC_ADMIN
];

/// The paths every confined run may write besides its working copy and `TMPDIR`.
pub(crate) fn device_paths() -> Vec<PathBuf> {
    [
        "/dev/null",
        "/dev/shm",
        "/dev/pts",
        "/dev/tty",
        "/dev/zero",
        "/dev/full",
    ]
    .iter()
    .map(PathBuf::from)
    .collect()
}

/// Whether `dir` is `of` or lies inside it.
pub(crate) fn within(dir: &Path, of: &Path) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    canon(dir).starts_with(canon(of))
}
