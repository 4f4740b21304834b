//! Throttling of admin password sign-in (`POST /v1/admin/login` and the UI's admin form).
//!
//! # Security
//! The admin password is the one secret an anonymous client can guess against online, so
//! every guess is made expensive and bounded:
//! - **Per client address**: after [`PEER_FREE_FAILURES`] consecutive wrong passwords from one
//!   address, each further attempt must wait: 1 s, then twice as long after every further
//!   failure, at most [`PEER_MAX_BACKOFF`]. Until then attempts are answered 429 with
//!   `Retry-After` *before* bcrypt runs, so they cost the server nothing. A success clears the
//!   address; an address forgotten after [`PEER_FORGET`] without failures starts afresh. IPv6
//!   clients are counted per /64 (one host usually holds a whole /64), and at most
//!   [`MAX_TRACKED_PEERS`] addresses are tracked: beyond that, untracked addresses share one
//!   bucket, so spraying addresses cannot grow memory or escape the limit.
//! - **Overall**: more than [`GLOBAL_MAX_FAILURES`] wrong passwords within
//!   [`GLOBAL_WINDOW`], from anywhere, close admin sign-in for everyone until the window ends
//!   (429 with `Retry-After`). A distributed guesser gets at most that many guesses a minute;
//!   the price is that such an attack also keeps the real admin out for its duration, which
//!   `admin.loginAllowedCidrs` avoids (refused addresses never reach the password check and
//!   never count).
//! - **Bounded work**: at most [`CONCURRENT_CHECKS`] bcrypt checks run at a time and at most
//!   [`MAX_WAITING`] more wait for one; any further attempt is refused at once with 429, so a
//!   flood cannot queue unbounded work or memory, nor starve the proxy's threads.
//! - The address is the TCP peer. Behind an ingress or load balancer that is the proxy's
//!   address, so every client shares one bucket (and the overall limit still holds); the
//!   documentation says so (docs/configuration.md, `admin.loginAllowedCidrs`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

/// Wrong passwords allowed from one address before it must wait.
pub const PEER_FREE_FAILURES: u32 = 5;
/// The longest one address is made to wait.
pub const PEER_MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// An address without a failure for this long is forgotten.
pub const PEER_FORGET: Duration = Duration::from_secs(3600);
/// The most addresses tracked at once.
pub const MAX_TRACKED_PEERS: usize = 10_000;
/// Wrong passwords allowed overall within [`GLOBAL_WINDOW`].
pub const GLOBAL_MAX_FAILURES: u32 = 60;
/// The window of the overall limit.
pub const GLOBAL_WINDOW: Duration = Duration::from_secs(60);
/// bcrypt checks that run at once.
pub const CONCURRENT_CHECKS: usize = 2;
/// Sign-ins that may wait for a bcrypt check; more are refused at once.
pub const MAX_WAITING: usize = 8;

/// The bucket for addresses beyond [`MAX_TRACKED_PEERS`] and for requests without a peer.
const OVERFLOW: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// Why an attempt may not go ahead now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Throttled {
    /// This address failed too often; it may try again after the duration.
    Peer(Duration),
    /// Too many failures overall; anyone may try again after the duration.
    Global(Duration),
    /// Too many sign-ins are waiting for a password check.
    Busy,
}

impl Throttled {
    /// Seconds for `Retry-After` (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        let d = match self {
            Throttled::Peer(d) | Throttled::Global(d) => *d,
            Throttled::Busy => Duration::from_secs(1),
        };
        d.as_secs() + u64::from(d.subsec_nanos() > 0)
    }

    /// What the client is told.
    pub fn message(&self) -> String {
        match self {
            Throttled::Peer(_) => format!(
                "too many wrong admin passwords from your address: try again in {} s",
                self.retry_after_secs()
            ),
            Throttled::Global(_) => format!(
                "too many wrong admin passwords were tried recently: admin sign-in is paused for everyone; try again in {} s",
                self.retry_after_secs()
            ),
            Throttled::Busy => {
                "too many admin sign-ins are in progress: try again in a second".to_owned()
            }
        }
    }
}

/// Why an admin sign-in was refused ([`crate::api::admin_sign_in`]).
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The admin account is off (404).
    #[error("the admin account is disabled on this gatehouse (admin.enabled is false)")]
    Disabled,
    /// The client's address is not in `admin.loginAllowedCidrs` (403).
    #[error(
        "admin sign-in is not allowed from your network address (admin.loginAllowedCidrs); sign in from an allowed network, or ask the platform team"
    )]
    AddressNotAllowed,
    /// Throttled (429, with `Retry-After`).
    #[error("{}", .0.message())]
    Throttled(Throttled),
    /// The password is wrong (401).
    #[error("wrong admin password")]
    WrongPassword,
    /// The admin token could not be issued (500).
    #[error(transparent)]
    Issue(gatehouse_core::admin::AdminTokenError),
}

#[derive(Debug, Clone, Copy)]
struct PeerState {
    failures: u32,
    last_failure: Instant,
    blocked_until: Option<Instant>,
}

#[derive(Debug)]
struct Inner {
    peers: HashMap<IpAddr, PeerState>,
    window_start: Option<Instant>,
    window_failures: u32,
}

/// The admin sign-in throttle: per-address backoff, an overall limit, and a bounded queue.
#[derive(Debug)]
pub struct LoginGuard {
    inner: Mutex<Inner>,
    queue: Semaphore,
    checks: Semaphore,
}

impl Default for LoginGuard {
    fn default() -> Self {
        Self::new()
    }
}

/// The key an address is counted under: IPv4 (and IPv4-mapped IPv6) as is, IPv6 by /64.
pub fn bucket(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// Backoff after `failures` consecutive failures (none within the free allowance).
fn backoff(failures: u32) -> Option<Duration> {
    let over = failures.checked_sub(PEER_FREE_FAILURES)?;
    let secs = 1u64.checked_shl(over.min(30)).unwrap_or(u64::MAX);
    Some(Duration::from_secs(secs).min(PEER_MAX_BACKOFF))
}

/// Permits to run one password check; dropping them frees the slot.
#[derive(Debug)]
pub struct CheckPermit<'a> {
    _queue: SemaphorePermit<'a>,
    _check: SemaphorePermit<'a>,
}

impl LoginGuard {
    /// A guard with no history.
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                peers: HashMap::new(),
                window_start: None,
                window_failures: 0,
            }),
            queue: Semaphore::new(CONCURRENT_CHECKS + MAX_WAITING),
            checks: Semaphore::new(CONCURRENT_CHECKS),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the counters inconsistent in a way that
        // matters (they are advisory); keep going with them.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// May `peer` try a password at `now`?
    pub fn check(&self, peer: Option<IpAddr>, now: Instant) -> Result<(), Throttled> {
        let inner = self.lock();
        if let Some(start) = inner.window_start
            && inner.window_failures >= GLOBAL_MAX_FAILURES
            && now < start + GLOBAL_WINDOW
        {
            return Err(Throttled::Global(start + GLOBAL_WINDOW - now));
        }
        let key = peer.map_or(OVERFLOW, bucket);
        // An address not tracked while the table is full was counted in the shared bucket.
        let state = inner.peers.get(&key).or_else(|| {
            (inner.peers.len() >= MAX_TRACKED_PEERS)
                .then(|| inner.peers.get(&OVERFLOW))
                .flatten()
        });
        if let Some(until) = state.and_then(|s| s.blocked_until)
            && now < until
        {
            return Err(Throttled::Peer(until - now));
        }
        Ok(())
    }

    /// Records a wrong password from `peer` at `now`.
    pub fn failed(&self, peer: Option<IpAddr>, now: Instant) {
        let mut inner = self.lock();
        match inner.window_start {
            Some(start) if now < start + GLOBAL_WINDOW => {
                inner.window_failures = inner.window_failures.saturating_add(1);
            }
            _ => {
                inner.window_start = Some(now);
                inner.window_failures = 1;
            }
        }
        let mut key = peer.map_or(OVERFLOW, bucket);
        if !inner.peers.contains_key(&key) && inner.peers.len() >= MAX_TRACKED_PEERS {
            inner
                .peers
                .retain(|_, s| now.saturating_duration_since(s.last_failure) < PEER_FORGET);
            if inner.peers.len() >= MAX_TRACKED_PEERS {
                key = OVERFLOW;
            }
        }
        let state = inner.peers.entry(key).or_insert(PeerState {
            failures: 0,
            last_failure: now,
            blocked_until: None,
        });
        if now.saturating_duration_since(state.last_failure) >= PEER_FORGET {
            state.failures = 0;
        }
        state.failures = state.failures.saturating_add(1);
        state.last_failure = now;
        state.blocked_until = backoff(state.failures).map(|d| now + d);
    }

    /// Records a correct password from `peer`: its failures are forgotten.
    pub fn succeeded(&self, peer: Option<IpAddr>) {
        if let Some(p) = peer {
            self.lock().peers.remove(&bucket(p));
        }
    }

    /// Waits for a password-check slot, or refuses at once when too many are waiting.
    pub async fn permit(&self) -> Result<CheckPermit<'_>, Throttled> {
        let queue = self.queue.try_acquire().map_err(|_| Throttled::Busy)?;
        let check = self.checks.acquire().await.map_err(|_| Throttled::Busy)?;
        Ok(CheckPermit {
            _queue: queue,
            _check: check,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn an_address_backs_off_exponentially_after_five_wrong_passwords() {
        let g = LoginGuard::new();
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..PEER_FREE_FAILURES {
            assert_eq!(g.check(a, t0), Ok(()));
            g.failed(a, t0);
        }
        // Five wrong passwords were free; the sixth attempt waits.
        assert_eq!(g.check(a, t0), Err(Throttled::Peer(Duration::from_secs(1))));
        assert_eq!(g.check(a, t0 + Duration::from_secs(1)), Ok(()));
        g.failed(a, t0 + Duration::from_secs(1));
        assert_eq!(
            g.check(a, t0 + Duration::from_secs(1)),
            Err(Throttled::Peer(Duration::from_secs(2)))
        );
        // Another address is not affected.
        assert_eq!(g.check(ip("192.0.2.2"), t0), Ok(()));
        // The backoff is capped.
        for _ in 0..40 {
            g.failed(a, t0);
        }
        assert_eq!(g.check(a, t0), Err(Throttled::Peer(PEER_MAX_BACKOFF)));
        // A success forgets the address.
        g.succeeded(a);
        assert_eq!(g.check(a, t0), Ok(()));
    }

    #[test]
    fn too_many_wrong_passwords_overall_pause_admin_sign_in_for_everyone() {
        let g = LoginGuard::new();
        let t0 = Instant::now();
        for i in 0..GLOBAL_MAX_FAILURES {
            g.failed(ip(&format!("198.51.100.{}", i % 250)), t0);
        }
        let refused = g.check(ip("203.0.113.9"), t0 + Duration::from_secs(10));
        assert_eq!(refused, Err(Throttled::Global(Duration::from_secs(50))));
        assert_eq!(refused.unwrap_err().retry_after_secs(), 50);
        assert_eq!(g.check(ip("203.0.113.9"), t0 + GLOBAL_WINDOW), Ok(()));
    }

    #[test]
    fn ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() {
        let g = LoginGuard::new();
        let t0 = Instant::now();
        for i in 0..=PEER_FREE_FAILURES {
            g.failed(ip(&format!("2001:db8:1:2::{i:x}")), t0);
        }
        assert!(g.check(ip("2001:db8:1:2:ffff::1"), t0).is_err());
        assert_eq!(g.check(ip("2001:db8:1:3::1"), t0), Ok(()));
        assert_eq!(
            bucket("::ffff:192.0.2.1".parse().unwrap()),
            ip("192.0.2.1").unwrap()
        );
    }

    #[test]
    fn tracked_addresses_are_bounded_and_the_overflow_shares_a_bucket() {
        let g = LoginGuard::new();
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED_PEERS {
            let n = u32::try_from(i).unwrap();
            g.failed(Some(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))), t0);
        }
        // Beyond the bound, fresh addresses land in one shared bucket.
        for i in 0..=PEER_FREE_FAILURES {
            g.failed(
                Some(IpAddr::V4(Ipv4Addr::new(
                    172,
                    16,
                    0,
                    u8::try_from(i).unwrap(),
                ))),
                t0,
            );
        }
        assert_eq!(g.lock().peers.len(), MAX_TRACKED_PEERS + 1);
        assert!(
            g.check(ip("172.16.0.200"), t0).is_err(),
            "the shared bucket is throttled"
        );
        // Old entries are pruned once forgotten.
        g.failed(ip("172.16.9.9"), t0 + PEER_FORGET);
        assert!(g.lock().peers.len() <= 2);
    }

    #[tokio::test]
    async fn the_wait_queue_is_bounded() {
        let g = LoginGuard::new();
        let mut held = Vec::new();
        for _ in 0..CONCURRENT_CHECKS {
            held.push(g.permit().await.unwrap());
        }
        // MAX_WAITING more may wait (they would block); one more is refused at once.
        let waiting: Vec<_> = (0..MAX_WAITING)
            .map(|_| g.queue.try_acquire().unwrap())
            .collect();
        assert_eq!(g.permit().await.unwrap_err(), Throttled::Busy);
        drop(waiting);
        drop(held);
        assert!(g.permit().await.is_ok());
    }
}
