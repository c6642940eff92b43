//! Simulcast layer choice for one forwarded video stream, without I/O.
//!
//! A sender publishes up to three layers of one camera, each named by its rid
//! and each half the width and height of the one above. For every receiver
//! the SFU forwards one layer: the smallest that still covers the size the
//! receiver shows, lowered further while its bitrate exceeds the receiver's
//! share of its bandwidth estimate. A switch waits for a keyframe of the new
//! layer, and until it arrives keyframes of it are requested at a bounded rate.

use std::time::{Duration, Instant};

use str0m::media::Rid;

/// The minimum time between two keyframe requests for one pending switch.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);

/// One layer a sender publishes, as the SFU measures it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer {
    pub rid: Rid,
    /// Received bitrate over the last second, in bits per second.
    pub bitrate_bps: u64,
}

/// What a receiver can take for one stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Constraints {
    /// The size of the sender's top layer, if the sender reported it.
    pub top_size: Option<(u32, u32)>,
    /// The size at which the receiver shows the sender, if it reported it.
    pub view: Option<(u32, u32)>,
    /// The receiver's share of its bandwidth estimate for this stream.
    pub share_bps: Option<u64>,
}

/// How far the share must exceed a higher layer's bitrate before the
/// receiver is moved up to it. Without the margin a receiver whose share is
/// close to a layer's bitrate would switch back and forth, paying a keyframe
/// each time.
pub const UP_SWITCH_MARGIN: f64 = 1.3;

/// Picks the rid to forward from `layers`, which are ordered from the
/// highest quality down, given the rid forwarded now. Returns `None` when
/// there are no layers.
pub fn choose(layers: &[Layer], constraints: Constraints, current: Option<Rid>) -> Option<Rid> {
    if layers.is_empty() {
        return None;
    }
    let mut index = 0;
    if let (Some((top_width, top_height)), Some((view_width, view_height))) =
        (constraints.top_size, constraints.view)
    {
        // Layer `i` is the top layer scaled down by 2^i. Go down while the
        // next layer still covers the view.
        while index + 1 < layers.len() {
            let scale = 1u32 << (index + 1);
            if top_width / scale >= view_width && top_height / scale >= view_height {
                index += 1;
            } else {
                break;
            }
        }
    }
    if let Some(share) = constraints.share_bps {
        let current_index = current.and_then(|rid| layers.iter().position(|l| l.rid == rid));
        let fits = |candidate: usize| {
            let needed = layers[candidate].bitrate_bps as f64;
            let above_current = current_index.is_some_and(|current| candidate < current);
            let margin = if above_current { UP_SWITCH_MARGIN } else { 1.0 };
            needed * margin <= share as f64
        };
        while index + 1 < layers.len() && !fits(index) {
            index += 1;
        }
    }
    Some(layers[index].rid)
}

/// The layer a receiver gets of one stream, and a switch in progress.
#[derive(Debug, Clone, Default)]
pub struct LayerState {
    /// The rid being forwarded; `None` until the first keyframe arrives.
    pub current: Option<Rid>,
    /// The rid to switch to at its next keyframe.
    pub target: Option<Rid>,
    last_keyframe_request: Option<Instant>,
}

/// What to do with one frame of a simulcast stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Forward the frame.
    Send,
    /// Drop the frame: it belongs to another layer, or the switch waits
    /// for a keyframe.
    Drop,
}

impl LayerState {
    /// Sets the layer to switch to. A switch to the current layer cancels
    /// a pending one.
    pub fn set_target(&mut self, target: Rid) {
        self.target = Some(target);
    }

    /// Returns whether a switch waits for a keyframe of the target layer.
    pub fn switch_pending(&self) -> bool {
        self.target.is_some() && self.target != self.current
    }

    /// Decides about one frame of layer `rid`. A keyframe of the target
    /// layer completes a pending switch; the frame that completes it is the
    /// first one forwarded from the new layer.
    pub fn on_frame(&mut self, rid: Rid, keyframe: bool) -> Forward {
        if self.switch_pending() && self.target == Some(rid) && keyframe {
            self.current = Some(rid);
            self.last_keyframe_request = None;
        }
        if self.current == Some(rid) {
            Forward::Send
        } else {
            Forward::Drop
        }
    }

    /// Returns the rid whose keyframe to request now, at most once every
    /// [`KEYFRAME_REQUEST_INTERVAL`], and only while a switch is pending.
    pub fn keyframe_request(&mut self, now: Instant) -> Option<Rid> {
        if !self.switch_pending() {
            return None;
        }
        if let Some(last) = self.last_keyframe_request
            && now.duration_since(last) < KEYFRAME_REQUEST_INTERVAL
        {
            return None;
        }
        self.last_keyframe_request = Some(now);
        self.target
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ladder() -> Vec<Layer> {
        vec![
            Layer {
                rid: "h".into(),
                bitrate_bps: 1_500_000,
            },
            Layer {
                rid: "m".into(),
                bitrate_bps: 500_000,
            },
            Layer {
                rid: "l".into(),
                bitrate_bps: 150_000,
            },
        ]
    }

    #[test]
    fn unconstrained_receiver_gets_the_top_layer() {
        assert_eq!(
            choose(&ladder(), Constraints::default(), None),
            Some("h".into())
        );
    }

    #[test]
    fn small_view_gets_the_smallest_layer_that_covers_it() {
        let constraints = Constraints {
            top_size: Some((1280, 720)),
            view: Some((320, 180)),
            share_bps: None,
        };
        assert_eq!(choose(&ladder(), constraints, None), Some("l".into()));
        let constraints = Constraints {
            view: Some((400, 225)),
            ..constraints
        };
        assert_eq!(choose(&ladder(), constraints, None), Some("m".into()));
    }

    #[test]
    fn odd_aspect_ratios_compare_both_sides() {
        // 5120x960 shown in a 1280x240 tile: the quarter layer is 1280x240.
        let constraints = Constraints {
            top_size: Some((5120, 960)),
            view: Some((1280, 240)),
            share_bps: None,
        };
        assert_eq!(choose(&ladder(), constraints, None), Some("l".into()));
        // 2560x1920 in a 1000x800 tile: the half layer 1280x960 covers it.
        let constraints = Constraints {
            top_size: Some((2560, 1920)),
            view: Some((1000, 800)),
            share_bps: None,
        };
        assert_eq!(choose(&ladder(), constraints, None), Some("m".into()));
    }

    #[test]
    fn low_bandwidth_lowers_the_layer() {
        let constraints = Constraints {
            share_bps: Some(600_000),
            ..Constraints::default()
        };
        assert_eq!(choose(&ladder(), constraints, None), Some("m".into()));
        let constraints = Constraints {
            share_bps: Some(50_000),
            ..Constraints::default()
        };
        assert_eq!(choose(&ladder(), constraints, None), Some("l".into()));
    }

    #[test]
    fn moving_up_needs_a_margin_moving_down_does_not() {
        let constraints = Constraints {
            share_bps: Some(1_600_000),
            ..Constraints::default()
        };
        // 1.6 Mbit/s covers the 1.5 Mbit/s top layer, but not with the margin.
        assert_eq!(
            choose(&ladder(), constraints, Some("m".into())),
            Some("m".into())
        );
        assert_eq!(
            choose(&ladder(), constraints, Some("h".into())),
            Some("h".into())
        );
        let constraints = Constraints {
            share_bps: Some(2_000_000),
            ..Constraints::default()
        };
        assert_eq!(
            choose(&ladder(), constraints, Some("m".into())),
            Some("h".into())
        );
        let constraints = Constraints {
            share_bps: Some(1_400_000),
            ..Constraints::default()
        };
        assert_eq!(
            choose(&ladder(), constraints, Some("h".into())),
            Some("m".into())
        );
    }

    #[test]
    fn switch_waits_for_a_keyframe_of_the_target() {
        let mut state = LayerState::default();
        state.set_target("h".into());
        assert_eq!(state.on_frame("h".into(), false), Forward::Drop);
        assert_eq!(state.on_frame("h".into(), true), Forward::Send);
        assert_eq!(state.on_frame("l".into(), true), Forward::Drop);

        state.set_target("l".into());
        // The old layer keeps flowing until the new one has a keyframe.
        assert_eq!(state.on_frame("h".into(), false), Forward::Send);
        assert_eq!(state.on_frame("l".into(), false), Forward::Drop);
        assert_eq!(state.on_frame("l".into(), true), Forward::Send);
        assert_eq!(state.on_frame("h".into(), false), Forward::Drop);
        assert!(!state.switch_pending());
    }

    #[test]
    fn keyframe_requests_only_while_a_switch_is_pending() {
        let start = Instant::now();
        let mut state = LayerState::default();
        assert_eq!(state.keyframe_request(start), None);
        state.set_target("m".into());
        assert_eq!(state.keyframe_request(start), Some("m".into()));
        assert_eq!(
            state.keyframe_request(start + Duration::from_millis(100)),
            None
        );
        let later = start + KEYFRAME_REQUEST_INTERVAL;
        assert_eq!(state.keyframe_request(later), Some("m".into()));
        state.on_frame("m".into(), true);
        assert_eq!(state.keyframe_request(later + Duration::from_secs(5)), None);
    }
}
