//! Links a testbed borrows from the root namespace for a run: the other port of a user's
//! vhost-user backend (`--sut vhost-user=SOCKET,port=IFNAME`), a tap or veth end in the
//! namespace vnetbed was started in. It is moved into the testbed's namespace onto the
//! bridge, and given back (moved to PID 1's namespace, brought up again if it was up) when
//! the testbed goes down, after a panic or SIGTERM as on a normal end.
//!
//! Each borrowed link is written to `borrowed-links` in the testbed's state directory
//! *before* it is moved (one line `IFNAME up|down`), so that `vnetbed net gc` gives it back
//! after a SIGKILL, before it deletes the namespace (deleting the namespace would destroy a
//! virtual link in it: a veth pair, a tap). Moving a link to another namespace loses its
//! addresses and its master; vnetbed gives back the link, not its configuration.

use std::io::Write;

use super::error::{NetError, Result};
use super::ip::Ip;
use super::state::StateDir;

/// The file in the state directory.
pub const BORROWED_LINKS_FILE: &str = "borrowed-links";

/// Whether `name` can be an interface name: 1 to 15 bytes, none of `/`, `:`, `,`, `=`, white
/// space, and not `.` or `..`.
pub fn valid_link_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | ':' | ',' | '='))
}

/// Move `link` from this namespace into `netns`, onto `bridge`, up; recorded first in
/// `state`'s [`BORROWED_LINKS_FILE`].
pub fn borrow_link(ip: &Ip, state: &StateDir, netns: &str, bridge: &str, link: &str) -> Result<()> {
    if !valid_link_name(link) {
        return Err(NetError::Reported(format!(
            "`{link}` is not an interface name"
        )));
    }
    let shown = ip.run(&["-j", "link", "show", "dev", link]).map_err(|e| {
        NetError::Reported(format!(
            "the backend's port {link} is not a link in vnetbed's namespace ({e}); create it \
             (the backend's tap or veth end) before the run"
        ))
    })?;
    let was_up = shown.contains("\"UP\"");
    let file = state.path().join(BORROWED_LINKS_FILE);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
        .map_err(|e| NetError::io(format!("cannot write {}", file.display()), e))?;
    writeln!(f, "{link} {}", if was_up { "up" } else { "down" })
        .and_then(|()| f.sync_all())
        .map_err(|e| NetError::io(format!("cannot write {}", file.display()), e))?;
    ip.run(&["link", "set", "dev", link, "netns", netns])?;
    ip.run_in(netns, &["link", "set", "dev", link, "master", bridge])?;
    ip.run_in(netns, &["link", "set", "dev", link, "up"])?;
    tracing::info!("borrowed link {link} into {netns} on {bridge}");
    Ok(())
}

/// Give every link recorded in `state` back to PID 1's namespace (up again if it was up),
/// then forget them. A link no longer in `netns` (its backend deleted it) is skipped. Returns
/// the links given back; the first error after trying them all.
pub fn give_back(ip: &Ip, state: &StateDir, netns: &str) -> Result<Vec<String>> {
    let file = state.path().join(BORROWED_LINKS_FILE);
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Ok(Vec::new());
    };
    let mut returned = Vec::new();
    let mut first_error = None;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(link), state) = (words.next(), words.next()) else {
            continue;
        };
        if !valid_link_name(link) {
            continue;
        }
        let moved = ip
            .run_in(netns, &["link", "set", "dev", link, "nomaster"])
            .and_then(|_| ip.run_in(netns, &["link", "set", "dev", link, "netns", "1"]));
        match moved {
            Ok(_) => {
                if state == Some("up") {
                    if let Err(e) = ip.run(&["link", "set", "dev", link, "up"]) {
                        first_error.get_or_insert(e);
                    }
                }
                tracing::info!("gave link {link} back from {netns}");
                returned.push(link.to_string());
            }
            // Gone (deleted by its owner, or the namespace is gone): nothing to give back.
            Err(NetError::IpFailed { stderr, .. })
                if stderr.contains("Cannot find device")
                    || stderr.contains("does not exist")
                    || stderr.contains("No such file") => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => {
            let _ = std::fs::remove_file(&file);
            Ok(returned)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_are_checked() {
        for good in ["veth0", "vhu-port.1", "a", "fifteen-chars-x"] {
            assert!(valid_link_name(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "a,b",
            "a=b",
            "sixteen-chars-xx",
            "a:b",
        ] {
            assert!(!valid_link_name(bad), "{bad}");
        }
    }
}
