//! Settings resolution: defaults, file against flags, refusals.

use super::*;

#[test]
fn defaults_resolve() {
    let c = Settings::default().resolve().expect("defaults are valid");
    assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
    assert_eq!(c.udp_port, 10000);
    assert!(c.tls.is_none());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(c.send_thread, cpus >= 2);
}

#[test]
fn file_is_overridden_by_flags() {
    let dir = std::env::temp_dir().join(format!("confab-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("c.toml");
    std::fs::write(&path, "udp-port = 4000\nmax-participants = 7\n").expect("write");
    let s = Settings {
        config: Some(path.clone()),
        udp_port: Some(5000),
        ..Default::default()
    };
    let c = s.resolve().expect("valid");
    assert_eq!(c.udp_port, 5000);
    assert_eq!(c.room.max_participants, 7);
    std::fs::write(&path, "nonsense = 1\n").expect("write");
    let s = Settings {
        config: Some(path),
        ..Default::default()
    };
    assert!(matches!(s.resolve(), Err(ConfigError::Parse(..))));
}

#[test]
fn half_tls_is_refused() {
    let s = Settings {
        tls_cert: Some("c.pem".into()),
        ..Default::default()
    };
    assert!(matches!(s.resolve(), Err(ConfigError::Invalid(_))));
}

/// Affinity is per thread and `available_parallelism` reads the caller's, so narrowing this
/// test's own thread to one CPU stands for a server started under `taskset -c 0`.
#[cfg(target_os = "linux")]
#[test]
fn send_threads_are_off_by_default_on_one_cpu_and_on_when_asked() {
    // SAFETY: a zeroed `cpu_set_t` is the empty set; CPU 0 exists; the call reads `set` only.
    let r = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    let c = Settings::default().resolve().expect("valid");
    assert!(!c.send_thread, "one CPU: no send threads by default");
    let s = Settings {
        send_thread: Some(true),
        ..Default::default()
    };
    assert!(s.resolve().expect("valid").send_thread, "asked for: on");
}
