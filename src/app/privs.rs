//! Floor L6 (`app`). `run --user NAME`: give up root for good once the capture, the outputs and
//! the metrics socket are open (the descriptors keep working: the kernel checks
//! privileges when a packet socket is opened, not when it is read).
//!
//! The switch is the classic one, in the only order that works: supplementary
//! groups to just NAME's primary group, then real/effective/saved gid, then
//! real/effective/saved uid (the filesystem ids follow the effective ones).
//! Leaving uid 0 clears every capability (no `PR_SET_KEEPCAPS`). glibc's
//! `set*id` wrappers apply the change to every thread of the process (the
//! metrics server and SIGHUP threads already run); the kernel call alone would
//! change only the calling thread. Then it checks that `setuid(0)` and
//! `setgid(0)` fail and that every id is NAME's.

use nix::errno::Errno;
use nix::unistd::{self, Gid, Uid, User};
use std::io;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("--user {name}: no such user")]
    Unknown { name: String },
    #[error("--user {name}: a user name cannot contain a NUL byte")]
    Nul { name: String },
    #[error("--user {name}: looking the user up failed: {source}")]
    Lookup {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "--user {name}: uid {uid} gid {gid} is root or the root group; name an unprivileged user"
    )]
    Privileged { name: String, uid: u32, gid: u32 },
    #[error("--user {name}: dropping privileges needs root, but zonewatch runs as uid {euid}; run it as root, or drop --user and give the binary the capture capabilities (setcap cap_net_raw,cap_net_admin=eip)")]
    NotRoot { name: String, euid: u32 },
    #[error("--user {name}: {call} failed: {source}")]
    Switch {
        name: String,
        call: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("--user {name}: after switching to uid {uid} gid {gid}, {what}; refusing to run")]
    NotDropped {
        name: String,
        uid: u32,
        gid: u32,
        what: String,
    },
}

/// An unprivileged account from the user database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl Account {
    /// Look `name` up (getpwnam_r: /etc/passwd or whatever NSS says) and
    /// check that the switch can happen: an unprivileged account, and
    /// zonewatch running as root.
    pub fn lookup(name: &str) -> Result<Account, UserError> {
        let a = Account::find(name)?;
        if a.uid == 0 || a.gid == 0 {
            return Err(UserError::Privileged {
                name: a.name,
                uid: a.uid,
                gid: a.gid,
            });
        }
        let euid = Uid::effective().as_raw();
        if euid != 0 {
            return Err(UserError::NotRoot { name: a.name, euid });
        }
        Ok(a)
    }

    /// The user database entry for `name`, whoever runs this.
    pub fn find(name: &str) -> Result<Account, UserError> {
        if name.contains('\0') {
            return Err(UserError::Nul {
                name: name.escape_debug().to_string(),
            });
        }
        match User::from_name(name) {
            Ok(Some(u)) => Ok(Account {
                name: name.to_string(),
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
            }),
            // Not found: no entry (POSIX), or ENOENT / ESRCH from some NSS
            // modules (getpwnam_r(3)).
            Ok(None) | Err(Errno::ENOENT | Errno::ESRCH) => Err(UserError::Unknown {
                name: name.to_string(),
            }),
            Err(e) => Err(UserError::Lookup {
                name: name.to_string(),
                source: io::Error::from(e),
            }),
        }
    }

    /// Become this user for good (see the module docs), and prove it.
    pub fn become_user(&self) -> Result<(), UserError> {
        let fail = |call: &'static str| {
            move |e: Errno| UserError::Switch {
                name: self.name.clone(),
                call,
                source: io::Error::from(e),
            }
        };
        let (uid, gid) = (Uid::from_raw(self.uid), Gid::from_raw(self.gid));
        unistd::setgroups(&[gid]).map_err(fail("setgroups"))?;
        unistd::setresgid(gid, gid, gid).map_err(fail("setresgid"))?;
        unistd::setresuid(uid, uid, uid).map_err(fail("setresuid"))?;
        self.verify()
    }

    /// Every id is this account's, and root cannot be regained.
    fn verify(&self) -> Result<(), UserError> {
        let not = |what: String| UserError::NotDropped {
            name: self.name.clone(),
            uid: self.uid,
            gid: self.gid,
            what,
        };
        // Success here is the error case.
        if unistd::setuid(Uid::from_raw(0)).is_ok() {
            return Err(not("setuid(0) still succeeds".into()));
        }
        if unistd::setgid(Gid::from_raw(0)).is_ok() {
            return Err(not("setgid(0) still succeeds".into()));
        }
        let u = unistd::getresuid().map_err(|e| not(format!("getresuid failed: {e}")))?;
        let (r, e, s) = (u.real.as_raw(), u.effective.as_raw(), u.saved.as_raw());
        if [r, e, s] != [self.uid; 3] {
            return Err(not(format!("uids are real {r} effective {e} saved {s}")));
        }
        let g = unistd::getresgid().map_err(|e| not(format!("getresgid failed: {e}")))?;
        let (r, e, s) = (g.real.as_raw(), g.effective.as_raw(), g.saved.as_raw());
        if [r, e, s] != [self.gid; 3] {
            return Err(not(format!("gids are real {r} effective {e} saved {s}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn root_is_found_with_uid_and_gid_zero_and_refused_as_a_target() {
        let root = Account::find("root").expect("root is in every user database");
        assert_eq!((root.uid, root.gid), (0, 0));
        match Account::lookup("root") {
            Err(e @ UserError::Privileged { .. }) => {
                assert!(e.to_string().contains("unprivileged user"), "{e}")
            }
            other => panic!("--user root accepted: {other:?}"),
        }
    }

    #[test]
    fn unknown_user_is_named_in_the_error() {
        match Account::find("zw-no-such-user-x") {
            Err(e @ UserError::Unknown { .. }) => {
                assert_eq!(e.to_string(), "--user zw-no-such-user-x: no such user")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nul_in_the_name_is_an_error_not_a_panic() {
        assert!(matches!(
            Account::find("no\0body"),
            Err(UserError::Nul { .. })
        ));
    }
}
