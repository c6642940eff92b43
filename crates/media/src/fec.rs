//! Sizing Opus's in-band FEC to the loss that the receiver reports.
//!
//! libopus spends more bits on the redundant copy of the previous frame
//! the higher the packet loss it is configured to expect. A fixed figure
//! either wastes bits on a clean network or protects too little on a bad
//! one, so the audio senders follow the fraction lost of each RTCP receiver
//! report for their stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::statistics::report::RTCStatsReportEntry;
use webrtc::rtp_transceiver::RtpSender;

use crate::codec::opus::{DEFAULT_EXPECTED_LOSS_PERCENT, OpusEncoder};
use crate::error::Result;
use crate::stats::StatsCounters;

/// Minimum loss FEC is planned for, in percent, so that the first losses
/// after a clean spell already find some redundancy.
pub const MIN_EXPECTED_LOSS_PERCENT: i32 = 1;
/// Maximum loss FEC is planned for, in percent, because the redundant copy
/// takes its bits from the primary frame. NOTE: chosen, not measured; the
/// benchmarks cover 5 % to 20 % loss.
pub const MAX_EXPECTED_LOSS_PERCENT: i32 = 25;
/// The weight of a lower report in the smoothed loss. A higher report
/// replaces it at once, because protection that comes late is lost speech.
const DECREASE_WEIGHT: f64 = 0.3;
/// How often the sender reads the connection's statistics for new reports.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The loss that FEC is planned for, smoothed over receiver reports.
#[derive(Debug, Clone)]
pub struct LossEstimate {
    /// Smoothed fraction of packets lost, 0 to 1.
    fraction: f64,
}

impl LossEstimate {
    /// Starts at `percent` until the first report.
    pub fn new(percent: i32) -> Self {
        Self {
            fraction: f64::from(percent) / 100.0,
        }
    }

    /// Adds the fraction lost (0 to 1) of one receiver report. A rise is
    /// taken at once and a fall is smoothed.
    pub fn on_report(&mut self, fraction_lost: f64) {
        let fraction_lost = fraction_lost.clamp(0.0, 1.0);
        if fraction_lost >= self.fraction {
            self.fraction = fraction_lost;
        } else {
            self.fraction += DECREASE_WEIGHT * (fraction_lost - self.fraction);
        }
    }

    /// Returns the expected loss to configure, in whole percent between
    /// the minimum and the maximum.
    pub fn percent(&self) -> i32 {
        ((self.fraction * 100.0).round() as i32)
            .clamp(MIN_EXPECTED_LOSS_PERCENT, MAX_EXPECTED_LOSS_PERCENT)
    }
}

/// Follows the receiver reports of one outgoing audio stream and sets the
/// encoder's expected loss from them.
pub(crate) struct FecTuner {
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
    estimate: LossEstimate,
    /// Packets received and lost in the last report seen, to tell a new
    /// report from the same one read again.
    last_report: Option<(u64, u64)>,
    next_check: Instant,
    stats: Arc<StatsCounters>,
}

impl FecTuner {
    pub(crate) fn new(sender: Arc<dyn RtpSender>, ssrc: u32, stats: Arc<StatsCounters>) -> Self {
        stats.set_audio_expected_loss(DEFAULT_EXPECTED_LOSS_PERCENT);
        Self {
            sender,
            ssrc,
            estimate: LossEstimate::new(DEFAULT_EXPECTED_LOSS_PERCENT),
            last_report: None,
            next_check: Instant::now() + CHECK_INTERVAL,
            stats,
        }
    }

    /// Reads new receiver reports, at most once per check interval, and
    /// updates `encoder` when the expected loss changed.
    pub(crate) async fn update(&mut self, encoder: &mut OpusEncoder) -> Result<()> {
        let now = Instant::now();
        if now < self.next_check {
            return Ok(());
        }
        self.next_check = now + CHECK_INTERVAL;
        let Some(fraction_lost) = self.new_report(now).await else {
            return Ok(());
        };
        let before = self.estimate.percent();
        self.estimate.on_report(fraction_lost);
        let percent = self.estimate.percent();
        if percent != before {
            tracing::debug!(
                ssrc = self.ssrc,
                fraction_lost,
                percent,
                "audio FEC planned for a new loss"
            );
            encoder.set_expected_loss(percent)?;
            self.stats.set_audio_expected_loss(percent);
        }
        Ok(())
    }

    /// Returns the fraction lost of the newest receiver report for the
    /// stream, or `None` when none arrived since the last call.
    async fn new_report(&mut self, now: Instant) -> Option<f64> {
        let report = match self.sender.get_stats(now).await {
            Ok(report) => report,
            Err(error) => {
                tracing::debug!(%error, "cannot read the audio sender's statistics");
                return None;
            }
        };
        let remote = report.iter().find_map(|entry| match entry {
            RTCStatsReportEntry::RemoteInboundRtp(remote)
                if remote.received_rtp_stream_stats.rtp_stream_stats.ssrc == self.ssrc =>
            {
                Some(remote)
            }
            _ => None,
        })?;
        let received = &remote.received_rtp_stream_stats;
        let counts = (received.packets_received, received.packets_reported_as_lost);
        if self.last_report == Some(counts) {
            return None;
        }
        self.last_report = Some(counts);
        Some(remote.fraction_lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_estimate_rises_at_once() {
        let mut estimate = LossEstimate::new(DEFAULT_EXPECTED_LOSS_PERCENT);
        estimate.on_report(0.18);
        assert_eq!(estimate.percent(), 18);
    }

    #[test]
    fn loss_estimate_falls_gradually_to_minimum() {
        let mut estimate = LossEstimate::new(DEFAULT_EXPECTED_LOSS_PERCENT);
        estimate.on_report(0.0);
        assert_eq!(estimate.percent(), 7);
        for _ in 0..20 {
            estimate.on_report(0.0);
        }
        assert_eq!(estimate.percent(), MIN_EXPECTED_LOSS_PERCENT);
    }

    #[test]
    fn loss_estimate_stays_within_limits() {
        let mut estimate = LossEstimate::new(DEFAULT_EXPECTED_LOSS_PERCENT);
        estimate.on_report(0.9);
        assert_eq!(estimate.percent(), MAX_EXPECTED_LOSS_PERCENT);
        estimate.on_report(-1.0);
        assert!(estimate.percent() >= MIN_EXPECTED_LOSS_PERCENT);
    }
}
