//! WebRTC conversions for a [webrtc-rs](https://webrtc.rs) node (feature `webrtc`):
//! the seed's flows in a few lines.
//!
//! - storing: [`NewIceServer`] from the `webrtc` crate's [`RTCIceServer`]
//!   (`TryFrom`, checked by the book's rules, [`IceServerError`] on bad input);
//! - reconnecting: [`PeerBook::rtc_ice_servers`] gives a stored peer's servers back as
//!   [`RTCIceServer`]s, TURN credentials opened with the book's key;
//! - disconnecting: [`IceSessionStats`] reads a `get_stats` report (the selected
//!   candidate pair, its round-trip time, the local and remote candidate types) and
//!   [`PeerBook::record_ice_session`] folds it into the peer's connection quality
//!   under the writer lock ([`PeerBook::record_session`] plus the connection type).
//!
//! ```
//! use peerbook::webrtc::{IceSessionStats, RTCIceServer};
//! use peerbook::{MasterKey, MemoryBackend, NewIceServer, NewPeer, Options, PeerBook};
//! use std::time::Duration;
//!
//! let book = PeerBook::open(MemoryBackend::new(), Options::new(MasterKey::generate()?))?;
//! let turn = RTCIceServer {
//!     urls: vec!["turn:turn.example.org:3478".into()],
//!     username: "alice".into(),
//!     credential: "s3cret".into(),
//! };
//! book.store_peer(NewPeer {
//!     peer_id: "ABC123".into(),
//!     ice_servers: vec![NewIceServer::try_from(turn.clone())?],
//!     ..NewPeer::default()
//! })?;
//! // Reconnecting: the servers to put in the RTCConfiguration.
//! assert_eq!(book.rtc_ice_servers("ABC123")?, vec![turn]);
//! // Disconnected: fold `pc.get_stats(..)` into the peer's quality.
//! # let report = Default::default();
//! let stats = IceSessionStats::from_report(&report);
//! let record = book.record_ice_session("ABC123", &stats, Duration::from_secs(60))?;
//! assert_eq!(record.connection_quality.total_connections, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

pub use ::webrtc::peer_connection::{
    RTCIceCandidateType, RTCIceServer, RTCStatsReport, RTCStatsReportEntry,
};

use crate::backend::Backend;
use crate::crypto::Secret;
use crate::error::{Error, Result};
use crate::schema::{validate_ice_urls, validate_secret, ConnectionType, NewIceServer, PeerRecord};
use crate::scoring::{update_quality_metrics, SessionObservation};
use crate::store::PeerBook;

/// Why an [`RTCIceServer`] cannot become a [`NewIceServer`]. Nothing is stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IceServerError {
    /// The server has no url (the book keeps 1..=4 per server).
    #[error("an ICE server needs at least one url")]
    NoUrls,
    /// A credential without a username: no TURN server can use it.
    #[error("an ICE server credential needs a username")]
    CredentialWithoutUsername,
    /// Another rule of the book's schema (too many or malformed urls, a username or
    /// credential too long...): an [`Error::InvalidInput`] whose field is named as
    /// for the first server of a peer (`ice_servers[0].urls[1]`).
    #[error(transparent)]
    Invalid(Error),
}

impl TryFrom<RTCIceServer> for NewIceServer {
    type Error = IceServerError;

    /// Check `server` by the book's rules (see [`schema`](crate::schema)); an empty
    /// `username` or `credential` means none.
    fn try_from(server: RTCIceServer) -> std::result::Result<Self, IceServerError> {
        let RTCIceServer {
            urls,
            username,
            credential,
        } = server;
        if urls.is_empty() {
            return Err(IceServerError::NoUrls);
        }
        let username = (!username.is_empty()).then_some(username);
        let credential = (!credential.is_empty()).then(|| Secret::from(credential));
        if credential.is_some() && username.is_none() {
            return Err(IceServerError::CredentialWithoutUsername);
        }
        validate_ice_urls(0, &urls, username.as_deref()).map_err(IceServerError::Invalid)?;
        if let Some(c) = &credential {
            validate_secret("ice_servers[0].credential", c).map_err(IceServerError::Invalid)?;
        }
        Ok(NewIceServer {
            urls,
            username,
            credential,
        })
    }
}

impl<B: Backend> PeerBook<B> {
    /// The stored peer's ICE servers as [`RTCIceServer`]s for an `RTCConfiguration`,
    /// TURN credentials opened with the book's key ([`Error::NotFound`] for an
    /// unknown peer). The credentials are then plain `String`s that webrtc keeps:
    /// they are not wiped on drop.
    pub fn rtc_ice_servers(&self, peer_id: &str) -> Result<Vec<RTCIceServer>> {
        let record = self.get_peer(peer_id)?.ok_or_else(|| Error::NotFound {
            peer_id: peer_id.to_string(),
        })?;
        self.rtc_ice_servers_of(&record)
    }

    /// [`rtc_ice_servers`](Self::rtc_ice_servers) of a record already read.
    /// A credential that is not UTF-8 (stored as bytes through another API) is
    /// [`Error::InvalidInput`]: webrtc takes text credentials.
    pub fn rtc_ice_servers_of(&self, record: &PeerRecord) -> Result<Vec<RTCIceServer>> {
        record
            .ice_servers
            .iter()
            .enumerate()
            .map(|(i, server)| {
                let credential = match self.open_ice_credential(record, i)? {
                    None => String::new(),
                    Some(secret) => secret.expose_str().map(str::to_owned).ok_or_else(|| {
                        Error::invalid(
                            format!("ice_servers[{i}].credential"),
                            "UTF-8 text (webrtc takes text credentials)",
                        )
                    })?,
                };
                Ok(RTCIceServer {
                    urls: server.urls.clone(),
                    username: server.username.clone().unwrap_or_default(),
                    credential,
                })
            })
            .collect()
    }

    /// Fold a finished WebRTC session into the peer's connection quality under the
    /// writer lock: [`record_session`](Self::record_session) with
    /// [`IceSessionStats::observation`], and the connection type of the selected
    /// pair when the stats know it. Returns the stored record.
    pub fn record_ice_session(
        &self,
        peer_id: &str,
        stats: &IceSessionStats,
        uptime: Duration,
    ) -> Result<PeerRecord> {
        let observation = stats.observation(uptime);
        self.modify(peer_id, |record, _| {
            let mut quality = update_quality_metrics(&record.connection_quality, &observation);
            if stats.connection_type != ConnectionType::Unknown {
                quality.connection_type = stats.connection_type;
            }
            record.connection_quality = quality;
            Ok(())
        })
    }
}

/// What an ICE stats report says about a session: read from the selected candidate
/// pair (the transport's `selectedCandidatePairId`, else a nominated pair that
/// succeeded).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IceSessionStats {
    /// A candidate pair was selected: the session connected.
    pub connected: bool,
    /// The pair's round-trip time in ms (`currentRoundTripTime`, else the mean of
    /// `totalRoundTripTime` over the responses), if measured.
    pub rtt_ms: Option<u32>,
    /// The selected pair's local candidate type, if the report has it.
    pub local_candidate_type: Option<RTCIceCandidateType>,
    /// The selected pair's remote candidate type, if the report has it.
    pub remote_candidate_type: Option<RTCIceCandidateType>,
    /// The path: [`ConnectionType::Relay`] if either side relays, else
    /// [`ConnectionType::Srflx`] if either side is reflexive (srflx or prflx), else
    /// [`ConnectionType::Host`] if both are host candidates, else unknown.
    pub connection_type: ConnectionType,
}

impl IceSessionStats {
    /// Read a report from `get_stats`.
    pub fn from_report(report: &RTCStatsReport) -> Self {
        Self::from_entries(report.iter())
    }

    /// Read the entries of a report (any order; ids resolved among them).
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = &'a RTCStatsReportEntry>) -> Self {
        let entries: Vec<&RTCStatsReportEntry> = entries.into_iter().collect();
        let selected_id = entries.iter().find_map(|e| match e {
            RTCStatsReportEntry::Transport(t) if !t.selected_candidate_pair_id.is_empty() => {
                Some(t.selected_candidate_pair_id.as_str())
            }
            _ => None,
        });
        let pairs = || {
            entries.iter().filter_map(|e| match e {
                RTCStatsReportEntry::IceCandidatePair(p) => Some(p),
                _ => None,
            })
        };
        let pair = selected_id
            .and_then(|id| pairs().find(|p| p.stats.id == id))
            .or_else(|| pairs().find(|p| p.nominated && is_succeeded(&p.state)));
        let Some(pair) = pair else {
            return Self::default();
        };
        let candidate_type = |id: &str, local: bool| {
            entries.iter().find_map(|e| match e {
                RTCStatsReportEntry::LocalCandidate(c) if local && c.stats.id == id => {
                    Some(c.candidate_type)
                }
                RTCStatsReportEntry::RemoteCandidate(c) if !local && c.stats.id == id => {
                    Some(c.candidate_type)
                }
                _ => None,
            })
        };
        let local = candidate_type(&pair.local_candidate_id, true);
        let remote = candidate_type(&pair.remote_candidate_id, false);
        let rtt_s = if pair.current_round_trip_time > 0.0 {
            Some(pair.current_round_trip_time)
        } else if pair.responses_received > 0 {
            Some(pair.total_round_trip_time / pair.responses_received as f64)
        } else {
            None
        };
        Self {
            connected: true,
            rtt_ms: rtt_s.and_then(seconds_to_ms),
            local_candidate_type: local,
            remote_candidate_type: remote,
            connection_type: path_type(local, remote),
        }
    }

    /// The session as the book scores it: a success when connected, with `uptime`
    /// (counted only then) and the RTT as latency.
    pub fn observation(&self, uptime: Duration) -> SessionObservation {
        SessionObservation {
            success: self.connected,
            uptime_ms: if self.connected {
                u64::try_from(uptime.as_millis()).unwrap_or(u64::MAX)
            } else {
                0
            },
            latency_ms: self.rtt_ms,
        }
    }
}

/// The pair state as the W3C stats name it (the enum's type is not exported by webrtc).
fn is_succeeded<S: serde::Serialize>(state: &S) -> bool {
    serde_json::to_value(state).is_ok_and(|v| v == "succeeded")
}

/// Seconds (a stats RTT) to whole ms; `None` when not finite or negative.
fn seconds_to_ms(seconds: f64) -> Option<u32> {
    let ms = (seconds * 1000.0).round();
    (ms.is_finite() && ms >= 0.0).then(|| ms.min(f64::from(u32::MAX)) as u32)
}

fn path_type(
    local: Option<RTCIceCandidateType>,
    remote: Option<RTCIceCandidateType>,
) -> ConnectionType {
    use RTCIceCandidateType as T;
    let sides = [local, remote];
    let any = |t: T| sides.contains(&Some(t));
    if any(T::Relay) {
        ConnectionType::Relay
    } else if any(T::Srflx) || any(T::Prflx) {
        ConnectionType::Srflx
    } else if sides.iter().all(|s| *s == Some(T::Host)) {
        ConnectionType::Host
    } else {
        ConnectionType::Unknown
    }
}
