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

/// How far the share must exceed a higher layer's bitrate before the
/// receiver is moved up to it. Without the margin a receiver whose share is
/// close to a layer's bitrate would switch back and forth, paying a keyframe
/// each time.
pub const UP_SWITCH_MARGIN: f64 = 1.3;

/// One stream a receiver gets, for sharing its bandwidth among its streams.
#[derive(Debug, Clone, Copy)]
pub struct Stream<'a> {
    /// The layers, ordered from the highest quality down.
    pub layers: &'a [Layer],
    /// The size of the sender's top layer, if the sender reported it.
    pub top_size: Option<(u32, u32)>,
    /// The size at which the receiver shows the sender, if it reported it.
    pub view: Option<(u32, u32)>,
    /// The rid forwarded now, or the one a pending switch goes to.
    pub current: Option<Rid>,
}

impl Stream<'_> {
    /// Returns the index of the best layer worth sending, which is the
    /// smallest that still covers the view. Layer `i` is the top layer scaled
    /// down by 2^i.
    fn ceiling(&self) -> usize {
        let mut index = 0;
        if let (Some((top_width, top_height)), Some((view_width, view_height))) =
            (self.top_size, self.view)
        {
            while index + 1 < self.layers.len() {
                let scale = 1u32 << (index + 1);
                if top_width / scale >= view_width && top_height / scale >= view_height {
                    index += 1;
                } else {
                    break;
                }
            }
        }
        index
    }

    /// Returns the cost of layer `index` against the budget: its bitrate,
    /// times the up-switch margin when it is above the layer forwarded now.
    fn cost(&self, index: usize) -> f64 {
        let current = self
            .current
            .and_then(|rid| self.layers.iter().position(|l| l.rid == rid));
        let margin = if current.is_some_and(|current| index < current) {
            UP_SWITCH_MARGIN
        } else {
            1.0
        };
        self.layers[index].bitrate_bps as f64 * margin
    }
}

/// Shares a receiver's bandwidth among its streams. Without a budget every
/// stream gets the best layer worth sending. With one, every stream starts
/// from its lowest layer, and the streams take turns moving up one layer
/// while the sum still fits, so that the budget is used rather than split
/// evenly. Returns the rid for each stream, `None` for a stream without
/// layers.
pub fn allocate(streams: &[Stream<'_>], budget_bps: Option<u64>) -> Vec<Option<Rid>> {
    let ceilings: Vec<usize> = streams.iter().map(Stream::ceiling).collect();
    let mut chosen: Vec<usize> = match budget_bps {
        None => ceilings.clone(),
        Some(_) => streams
            .iter()
            .map(|s| s.layers.len().saturating_sub(1))
            .collect(),
    };
    if let Some(budget) = budget_bps {
        let budget = budget as f64;
        let mut spent: f64 = streams
            .iter()
            .zip(&chosen)
            .filter(|(s, _)| !s.layers.is_empty())
            .map(|(s, index)| s.cost(*index))
            .sum();
        loop {
            let mut moved = false;
            for (i, stream) in streams.iter().enumerate() {
                if stream.layers.is_empty() || chosen[i] <= ceilings[i] {
                    continue;
                }
                let extra = stream.cost(chosen[i] - 1) - stream.cost(chosen[i]);
                if spent + extra <= budget {
                    spent += extra;
                    chosen[i] -= 1;
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
    }
    streams
        .iter()
        .zip(chosen)
        .map(|(s, index)| s.layers.get(index).map(|l| l.rid))
        .collect()
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

    /// The limits of one receiver for one stream.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    struct Constraints {
        /// The size of the sender's top layer, if the sender reported it.
        top_size: Option<(u32, u32)>,
        /// The size at which the receiver shows the sender, if it reported it.
        view: Option<(u32, u32)>,
        /// The receiver's share of its bandwidth estimate for this stream.
        share_bps: Option<u64>,
    }

    /// Picks the rid to forward from `layers`, which are ordered from the
    /// highest quality down, given the rid forwarded now. Returns `None` when
    /// there are no layers.
    fn choose(layers: &[Layer], constraints: Constraints, current: Option<Rid>) -> Option<Rid> {
        let stream = Stream {
            layers,
            top_size: constraints.top_size,
            view: constraints.view,
            current,
        };
        allocate(&[stream], constraints.share_bps)[0]
    }

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

    #[test]
    fn budget_goes_to_whole_layers_in_turn() {
        let ladder = vec![
            Layer {
                rid: "f".into(),
                bitrate_bps: 400_000,
            },
            Layer {
                rid: "h".into(),
                bitrate_bps: 150_000,
            },
            Layer {
                rid: "q".into(),
                bitrate_bps: 60_000,
            },
        ];
        let stream = Stream {
            layers: &ladder,
            top_size: None,
            view: None,
            current: None,
        };
        // An even split (283 kbit/s each) would give everyone the middle
        // layer; in turns, the first stream reaches the top.
        assert_eq!(
            allocate(&[stream; 3], Some(850_000)),
            vec![Some("f".into()), Some("h".into()), Some("h".into())]
        );
        assert_eq!(allocate(&[stream; 3], None), vec![Some("f".into()); 3]);
        // Below the sum of the lowest layers, the lowest layers still go.
        assert_eq!(
            allocate(&[stream; 3], Some(10_000)),
            vec![Some("q".into()); 3]
        );
        let empty = Stream {
            layers: &[],
            ..stream
        };
        assert_eq!(
            allocate(&[empty, stream], Some(500_000)),
            vec![None, Some("f".into())]
        );
    }
}
