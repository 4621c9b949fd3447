//! Connection slots (a cap in total and per source address, taken on accept, freed on drop),
//! and fitting the caps to the process's open-file limit.

use crate::config::Limits;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts open connections against a total and a per-address cap. Locked once when a
/// connection opens and once when it closes, never per packet or request.
#[derive(Debug)]
pub struct Slots {
    total: usize,
    per_address: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// Why a slot was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every slot is taken.
    Total,
    /// This source address holds its share already.
    Address,
}

impl Slots {
    /// At most `total` open at once, at most `per_address` from one IP address.
    pub fn new(total: usize, per_address: usize) -> Arc<Slots> {
        Arc::new(Slots {
            total,
            per_address,
            open: Mutex::new(Open::default()),
        })
    }

    /// A slot for a connection from `ip`, held until the [`Slot`] drops.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let mut open = self.open.lock().map_err(|_| Refused::Total)?;
        if open.total >= self.total {
            return Err(Refused::Total);
        }
        let n = open.by_address.entry(ip).or_default();
        if *n >= self.per_address {
            return Err(Refused::Address);
        }
        *n += 1;
        open.total += 1;
        Ok(Slot {
            slots: Arc::clone(self),
            ip: Some(ip),
        })
    }

    /// A slot counted against the total cap only: for a connection another node of the
    /// cluster relays (all of them come from that node's address).
    pub fn take_exempt(self: &Arc<Self>) -> Result<Slot, Refused> {
        let mut open = self.open.lock().map_err(|_| Refused::Total)?;
        if open.total >= self.total {
            return Err(Refused::Total);
        }
        open.total += 1;
        Ok(Slot {
            slots: Arc::clone(self),
            ip: None,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().map(|o| o.total).unwrap_or(0)
    }

    /// The total cap.
    pub fn cap(&self) -> usize {
        self.total
    }
}

/// One taken slot; dropping it frees it.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    /// `None`: an exempt slot, not counted for its address.
    ip: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.slots.open.lock() {
            open.total = open.total.saturating_sub(1);
            if let Some(ip) = self.ip {
                if let Some(n) = open.by_address.get_mut(&ip) {
                    *n -= 1;
                    if *n == 0 {
                        open.by_address.remove(&ip);
                    }
                }
            }
        }
    }
}

/// Descriptors kept free beyond every cap: listeners, UDP sockets, the runtime's own, a log
/// file, and the moment between `accept` and closing a refused connection.
pub const FD_SPARE: u64 = 64;

/// HTTP(S) connections over the caps that may still ask `/healthz` or `/metrics`, in all.
pub const HTTP_RESERVE: usize = 16;

/// Of [`HTTP_RESERVE`], the slots kept for a monitor on the server's own host (sources
/// 127.0.0.1 and ::1), which no other address can take.
pub const HTTP_RESERVE_LOCAL: usize = 4;

/// Of the rest, how many one source address may hold: one, so that filling the reserve takes
/// as many addresses as it has slots (an IPv6 /64 counts as one address).
pub const HTTP_RESERVE_PER_ADDRESS: usize = 1;

/// Whether a connection from `ip` is the local monitor's (see [`HTTP_RESERVE_LOCAL`]).
pub fn is_local_monitor(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4 == std::net::Ipv4Addr::LOCALHOST,
        IpAddr::V6(v6) => {
            v6 == std::net::Ipv6Addr::LOCALHOST
                || v6.to_ipv4_mapped() == Some(std::net::Ipv4Addr::LOCALHOST)
        }
    }
}

/// The address a remote reserve slot is counted against: an IPv6 source by its /64, which one
/// host commonly holds whole.
pub fn reserve_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// Connections over the per-address cap whose request head is being read at once, to see
/// whether another node of the cluster relays them (each for at most a second).
pub const RELAY_CHECKS: usize = 32;

/// Of [`RELAY_CHECKS`], how many one source address may hold.
pub const RELAY_CHECKS_PER_ADDRESS: usize = 16;

/// Raises the soft open-file limit to the hard one (a server holds a descriptor per
/// connection; the common soft default of 1,024 is far too few). Returns the limit now in
/// force, or `None` where it cannot be read.
pub fn raise_open_files() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes only into the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            // SAFETY: setrlimit only reads the struct it is given.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        Some(lim.rlim_cur)
    }
    #[cfg(not(unix))]
    None
}

/// Lowers the connection caps so that, all of them full, [`FD_SPARE`] descriptors are still
/// free under `open_files`: accepting and refusing (or serving `/healthz` from the reserve)
/// then never fails for want of one. HTTP keeps three quarters of what is left, ICE-TCP one.
pub fn fit_to_open_files(limits: &mut Limits, open_files: u64) {
    let usable =
        open_files.saturating_sub(FD_SPARE + (HTTP_RESERVE + RELAY_CHECKS) as u64) as usize;
    let need = limits.max_connections + limits.ice_tcp_max_connections;
    if need <= usable {
        return;
    }
    let http = (usable * 3 / 4).max(1);
    let tcp = usable.saturating_sub(http).max(1);
    tracing::warn!(
        open_files,
        http,
        ice_tcp = tcp,
        "open-file limit too low for the connection caps; lowering them"
    );
    limits.max_connections = limits.max_connections.min(http);
    limits.ice_tcp_max_connections = limits.ice_tcp_max_connections.min(tcp);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_fit_under_the_open_file_limit_with_a_spare() {
        let mut l = Limits::default();
        fit_to_open_files(&mut l, 1024);
        let used = l.max_connections + l.ice_tcp_max_connections + HTTP_RESERVE + RELAY_CHECKS;
        assert!(used as u64 + FD_SPARE <= 1024, "{l:?}");
        assert!(l.max_connections >= 512 && l.ice_tcp_max_connections >= 128);
        let mut big = Limits::default();
        fit_to_open_files(&mut big, 1 << 20);
        assert_eq!(big.max_connections, Limits::default().max_connections);
    }

    #[test]
    fn reserve_keys_and_local_monitor() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(is_local_monitor(ip("127.0.0.1")) && is_local_monitor(ip("::1")));
        assert!(is_local_monitor(ip("::ffff:127.0.0.1")));
        assert!(!is_local_monitor(ip("127.0.0.2")) && !is_local_monitor(ip("10.0.0.1")));
        assert_eq!(
            reserve_key(ip("2001:db8::1")),
            reserve_key(ip("2001:db8::ffff:2"))
        );
        assert_ne!(
            reserve_key(ip("2001:db8::1")),
            reserve_key(ip("2001:db8:0:1::1"))
        );
        assert_eq!(reserve_key(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
        assert_eq!(reserve_key(ip("10.0.0.1")), ip("10.0.0.1"));
    }

    #[test]
    fn caps_total_and_per_address_and_frees_on_drop() {
        let slots = Slots::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let a1 = slots.take(a).expect("first");
        let _a2 = slots.take(a).expect("second");
        assert_eq!(slots.take(a).err(), Some(Refused::Address));
        let _b1 = slots.take(b).expect("other address");
        assert_eq!(slots.take(b).err(), Some(Refused::Total));
        assert_eq!(slots.open(), 3);
        drop(a1);
        assert_eq!(slots.open(), 2);
        assert!(slots.take(a).is_ok());
    }

    #[test]
    fn exempt_slots_count_in_total_only() {
        let slots = Slots::new(3, 1);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let _a1 = slots.take(a).expect("first");
        assert_eq!(slots.take(a).err(), Some(Refused::Address));
        let e1 = slots.take_exempt().expect("exempt");
        let _e2 = slots.take_exempt().expect("exempt");
        assert_eq!(slots.take_exempt().err(), Some(Refused::Total));
        drop(e1);
        // Freeing an exempt slot leaves the address's count alone.
        assert_eq!(slots.take(a).err(), Some(Refused::Address));
        assert!(slots.take_exempt().is_ok());
    }
}
